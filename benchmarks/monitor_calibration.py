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
"""

from __future__ import annotations

import argparse
import json
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
    args = parser.parse_args()

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


if __name__ == "__main__":
    raise SystemExit(main())
