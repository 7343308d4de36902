"""Why the ecda_drift experiment's stable windows raised false alarms: a fixed small reference.

The MMD permutation p-value is valid over draws of *both* samples. A monitor tests every
window against one fixed reference sample, so what matters is the p-value's distribution
*given* that sample. This script takes a finished ``ecda_drift`` run and, for ``--windows``
random windows of the stream's stable queries, tests each window

* against the language's stored reference sample (what the monitor does), and
* against as many *other* stable queries, drawn afresh for every window (a new reference
  each time: the setting in which the permutation p-value is uniform), and
* with ``--fixed-rows N``, against one fixed sample of N other stable queries drawn once
  (windows then come from the rest): how the rate given one reference depends on its size.

If the reference were as good as any sample of its size, both columns would look alike
(mean p about 0.5, about 5% at p <= 0.05). Embeddings come from the cache the run filled.

    python benchmarks/monitor_calibration.py --run runs/experiments/ecda_drift --lang sw --seed 0

``--synthetic`` instead measures every test's false-alarm rate *given the reference* where the
law is known: ``--references`` references (1,000 rows each) are drawn from independent
anisotropic mixtures on the sphere (``lingualift.testing.SphereMixture``) and each is tested
with stable windows of 200 from its own law. For the novelty test the rate given the
reference is computed exactly (the share of 100,000 fresh queries beyond the radius gives
the binomial law of a window's count): the monitor's test, the rule it replaced (the 249th
of 250 held-out distances, beta-binomial p-value), and two exact permutation tests of the
window's distances against the 500 calibration distances (one-sided Mann-Whitney, and the
count above the pooled 0.95 quantile: hypergeometric), simulated; JS and MMD at the
monitor's defaults, simulated. Each at the per-test level alpha/3 of the decision. The
novelty-type tests are also run on windows with 5% and 10% of queries from a topic the law
lacks (their detection rate).

    python benchmarks/monitor_calibration.py --synthetic --out docs/continual_novelty_synthetic.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/experiments/ecda_drift")
    parser.add_argument("--lang", default="sw")
    parser.add_argument("--seed", type=int, default=0, help="which seed's stream")
    parser.add_argument("--windows", type=int, default=40)
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--fixed-rows", type=int, default=0, help="size of a fixed reference")
    parser.add_argument("--out", help="JSON file for the figures")
    parser.add_argument("--synthetic", action="store_true", help="rates given each reference")
    parser.add_argument("--references", type=int, default=20, help="with --synthetic")
    parser.add_argument("--dim", type=int, default=64, help="with --synthetic")
    args = parser.parse_args()
    if args.synthetic:
        return synthetic(args)

    from safetensors.numpy import load_file

    from lingualift.compass.embedding import embed_texts
    from lingualift.config import read_yaml
    from lingualift.continual.stats import mmd_test

    run = Path(args.run)
    config = read_yaml(run / "config.yaml")
    reference = load_file(str(run / "stores/base" / args.lang / "v1/reference/sample.safetensors"))
    ref = reference["sample"].astype(np.float32)
    stable = config["window"] * config["windows_before"]
    log = run / "streams" / f"{args.lang}-s{args.seed}" / "traffic.jsonl"
    texts = [json.loads(line)["text"] for line in log.read_text().splitlines()[:stable]]
    stream, _ = embed_texts(texts, config["encoder"], progress=False)

    rng = np.random.default_rng(0)
    size = config["window"]
    held = rng.permutation(len(stream))
    big, rest = stream[held[: args.fixed_rows]], stream[held[args.fixed_rows :]]
    columns: dict[str, list[float]] = {"stored_reference": [], "fresh_reference": []}
    if args.fixed_rows:
        columns[f"fixed_{args.fixed_rows}_rows"] = []
    for _ in range(args.windows):
        order = rng.permutation(len(stream))
        window = stream[order[:size]]
        columns["stored_reference"].append(
            mmd_test(window, ref, args.permutations, rng, 0.05).pvalue
        )
        other = stream[order[size : size + len(ref)]]
        columns["fresh_reference"].append(
            mmd_test(window, other, args.permutations, rng, 0.05).pvalue
        )
        if args.fixed_rows:
            window = rest[rng.permutation(len(rest))[:size]]
            p = mmd_test(window, big, args.permutations, rng, 0.05).pvalue
            columns[f"fixed_{args.fixed_rows}_rows"].append(p)
    figures = {
        "lang": args.lang, "seed": args.seed, "windows": args.windows, "window_size": size,
        "reference_rows": len(ref), "stable_queries": len(stream),
    }  # fmt: skip
    for name, values in columns.items():
        values = np.asarray(values)
        figures[name] = {
            "mean_p": round(float(values.mean()), 3),
            "share_p_le_0.05": round(float((values <= 0.05).mean()), 3),
        }
        print(f"{name:17s} mean p {values.mean():.3f}   p <= 0.05 in {(values <= 0.05).sum()}"
              f" of {len(values)} windows")  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


def permutation_rejections(windows: np.ndarray, calibration: np.ndarray, level: float) -> dict:
    """Share of rows of ``windows`` (distances) that two exact permutation tests reject.

    One-sided Mann-Whitney of the window against the calibration distances, and the count
    of window rows above the pooled sample's 0.95 quantile (hypergeometric given the pooled
    sample). Both condition on the pooled sample: exact on average over calibration draws.
    """
    from scipy.stats import hypergeom, mannwhitneyu

    size, n = windows.shape[1], len(calibration)
    mw = mannwhitneyu(windows, calibration[None, :], alternative="greater", axis=1).pvalue
    pooled = np.concatenate([windows, np.broadcast_to(calibration, (len(windows), n))], axis=1)
    cut = np.sort(pooled, axis=1)[:, -math.ceil(0.05 * (size + n))][:, None]
    above = pooled >= cut
    count = hypergeom.sf(above[:, :size].sum(axis=1) - 1, size + n, above.sum(axis=1), size)
    return {
        "mann_whitney": float(np.mean(mw <= level)),
        "pooled_count": float(np.mean(count <= level)),
    }


def synthetic(args: argparse.Namespace) -> int:
    from scipy.stats import betabinom, binom

    from lingualift.compass.embedding import EmbeddedSet
    from lingualift.continual.monitor import DriftMonitor
    from lingualift.continual.reference import Reference, nearest
    from lingualift.continual.stats import novelty_test, radius_rank
    from lingualift.testing import SphereMixture

    alpha, size, level = 0.05, 200, 0.05 / 3
    monitored = args.windows  # JS / MMD / Holm windows per reference (--windows)
    simulated = 400  # windows per reference for the permutation tests and the power
    shares = (0.05, 0.1)  # novel shares whose detection rate is measured

    def distances(reference: Reference, vectors: np.ndarray) -> np.ndarray:
        return 1.0 - nearest(vectors, reference.profile.centroids)[1].astype(np.float64)

    rows = []
    for i in range(args.references):
        law = SphereMixture(seed=1000 + i, dim=args.dim)
        rng = np.random.default_rng(i)
        usage = law.draw(1000, rng)
        reference = Reference.build(EmbeddedSet.from_vectors(usage, "toy"), "sw", seed=i)
        fresh = distances(reference, law.draw(100_000, rng))
        probe = novelty_test(0, size, reference.radius_rank, reference.n_calibration, level)
        critical = round(probe.threshold * size)
        # The replaced rule: the 249th of 250 held-out distances (fresh draws are such a
        # split), beta-binomial p-value.
        old_radius = np.sort(distances(reference, law.draw(250, rng)))[radius_rank(250, 0.99) - 1]
        old_tails = betabinom.sf(np.arange(size + 1) - 1, size, 2, 249)
        old_critical = int(np.flatnonzero(old_tails <= level)[0])
        cut, old_cut = float(np.mean(fresh > reference.radius)), float(np.mean(fresh > old_radius))
        row: dict = {
            "reference": i,
            "novelty_cut": round(cut, 4),
            "old_rule_cut": round(old_cut, 4),
        }
        # False alarms given the reference: exact from the cut for the two radius rules.
        row["novelty"] = float(binom.sf(critical - 1, size, cut))
        row["old_rule"] = float(binom.sf(old_critical - 1, size, old_cut))
        calibration = distances(reference, law.draw(500, rng))
        for share in (0.0, *shares):
            windows = distances(reference, law.draw(simulated * size, rng, novel_share=share))
            windows = windows.reshape(simulated, size)
            rejected = permutation_rejections(windows, calibration, level)
            if share == 0.0:
                row.update(rejected)
                continue
            rejected["novelty"] = float(np.mean((windows > reference.radius).sum(1) >= critical))
            rejected["old_rule"] = float(np.mean((windows > old_radius).sum(1) >= old_critical))
            row.update({f"{k}@{share:g}": v for k, v in rejected.items()})
        # JS, MMD and the decision at the monitor's defaults.
        monitor = DriftMonitor(reference, alpha=alpha, seed=i)
        flags = {"js": 0, "mmd": 0, "decision": 0}
        for w in range(monitored):
            report = monitor.update(EmbeddedSet.from_vectors(law.draw(size, rng), "toy"), index=w)
            flags["js"] += report.tests["js"].pvalue <= level
            flags["mmd"] += report.tests["mmd"].pvalue <= level
            flags["decision"] += report.drift
        row.update({k: v / monitored for k, v in flags.items()})
        rows.append(row)
        print(" ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
    tests = ("novelty", "old_rule", "mann_whitney", "pooled_count")
    summary = {}
    for name in (*tests, "js", "mmd", "decision"):
        values = np.array([row[name] for row in rows])
        summary[name] = {
            "median": round(float(np.median(values)), 4),
            "max": round(float(values.max()), 4),
            "references_above_level": int(
                np.sum(values > (alpha if name == "decision" else level))
            ),
            "references_above_alpha": int(np.sum(values > alpha)),
        }
    power = {
        f"{name}@{share:g}": round(float(np.mean([row[f"{name}@{share:g}"] for row in rows])), 3)
        for name in tests
        for share in shares
    }
    figures = {
        "command": "python benchmarks/monitor_calibration.py --synthetic"
        f" --references {args.references} --windows {args.windows} --dim {args.dim}",
        "alpha": alpha, "per_test_level": round(level, 5), "window": size,
        "reference_rows": 1000, "dim": args.dim,
        "windows_per_reference": {"novelty": "exact", "old_rule": "exact",
                                  "mann_whitney": simulated, "pooled_count": simulated,
                                  "js": monitored, "mmd": monitored, "decision": monitored},
        "false_alarms_given_the_reference": summary,
        "detection_mean_over_references": power,
        "references": rows,
    }  # fmt: skip
    for name, values in summary.items():
        print(f"{name:13s} {values}")
    print("detected:", power)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
