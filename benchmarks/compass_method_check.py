"""Does COMPASS close the target's gap better than the baselines? A check on the embedded corpus.

    python benchmarks/compass_method_check.py --lang sw --seeds 5 --budget 300

Target usage: held-out verses of ``--lang`` from a few books (Psalms, Matthew,
John); training: that language's verses from other books (Genesis to Esther);
pool: every other corpus language, all books, ``--per-language`` verses each.
All three are embedded with e5-nano (cached after the first run). For each
seed, compass, random and lang-similarity select the same budget; we record
JS(target || training + selection) from the sampler's own report (the same
clustering for all methods at a seed) and on an independent clustering (other
seed and K) so that compass is not only judged on the clusters it optimised.
Writes docs/compass_method_check.json and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="sw")
    parser.add_argument("--target-books", default="19,40,43")
    parser.add_argument("--training-books", default="1-17")
    parser.add_argument("--n-target", type=int, default=300)
    parser.add_argument("--n-training", type=int, default=600)
    parser.add_argument("--per-language", type=int, default=150)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--eval-k", type=int, default=24)
    parser.add_argument("--out", default="docs/compass_method_check")
    args = parser.parse_args()

    from lingualift.atomic import atomic_path, atomic_write_text
    from lingualift.compass import SphericalKMeans, embed_records, make_sampler
    from lingualift.compass.report import divergences
    from lingualift.data import CORPUS_LANGUAGES, ParallelCorpus
    from lingualift.languages import normalize_language

    lang = normalize_language(args.lang)
    corpus = ParallelCorpus()
    rng = np.random.default_rng(0)

    def sample(records, n):
        keep = np.sort(rng.choice(len(records), min(n, len(records)), replace=False))
        return [records[i] for i in keep]

    target = sample(corpus.monolingual(lang, args.target_books), args.n_target)
    training = sample(corpus.monolingual(lang, args.training_books), args.n_training)
    pool = []
    for other in CORPUS_LANGUAGES:
        if other != lang:
            pool += sample(corpus.multilingual([other], "all"), args.per_language)
    t0 = time.perf_counter()
    sets = [embed_records(r, "e5-nano") for r in (target, training, pool)]
    embed_s = time.perf_counter() - t0
    print(f"embedded {sum(map(len, sets))} texts in {embed_s:.0f} s", flush=True)

    methods = {
        "compass": {},
        "compass+typology": {"language_prior": "typology"},
        "random": {},
        "lang-similarity": {"k_languages": 3},
    }
    rows = []
    for seed in range(args.seeds):
        for name, extra in methods.items():
            sampler = make_sampler(
                name.split("+")[0], encoder="e5-nano", seed=seed, progress=False, **extra
            )
            sel = sampler.fit(*sets).select(budget=args.budget)
            # Independent clustering for judging: other seed and K, same (centred) space.
            views = sampler.views_
            km = SphericalKMeans(args.eval_k, seed=1000 + seed).fit(*views)
            labels = [km.predict(np.asarray(v))[0] for v in views[:2]]
            pool_labels, _ = km.predict(views[2])
            before, after = divergences(labels[0], labels[1], pool_labels[sel.indices], args.eval_k)
            rows.append(
                {
                    "seed": seed,
                    "method": name,
                    "js_before": sel.report.js_before,
                    "js_after": sel.report.js_after,
                    "js_before_indep": round(before, 6),
                    "js_after_indep": round(after, 6),
                    "n_selected": len(sel),
                    "languages": dict(list(sel.report.languages.items())[:5]),
                }
            )
            print(
                f"seed {seed} {name:>17}: JS {sel.report.js_before:.4f} -> "
                f"{sel.report.js_after:.4f} (independent {before:.4f} -> {after:.4f})",
                flush=True,
            )

    summary = {}
    for name in methods:
        mine = [r for r in rows if r["method"] == name]
        for key in ("js_after", "js_after_indep"):
            values = np.array([r[key] for r in mine])
            summary.setdefault(name, {})[key] = {
                "mean": round(float(values.mean()), 5),
                "std": round(float(values.std()), 5),
            }
        summary[name]["js_before"] = round(float(np.mean([r["js_before"] for r in mine])), 5)
        summary[name]["js_before_indep"] = round(
            float(np.mean([r["js_before_indep"] for r in mine])), 5
        )
    result = {
        "args": vars(args),
        "embed_s": round(embed_s, 1),
        "n_target": len(target),
        "n_training": len(training),
        "n_pool": len(pool),
        "summary": summary,
        "runs": rows,
        "loadavg": os.getloadavg(),
    }
    out = Path(args.out)
    atomic_write_text(
        out.with_suffix(".json"), json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    )
    print(json.dumps(summary, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    for ax, key, title in (
        (axes[0], "js_after", "sampler's clustering"),
        (axes[1], "js_after_indep", f"independent clustering (K={args.eval_k})"),
    ):
        names = list(methods)
        means = [summary[n][key]["mean"] for n in names]
        stds = [summary[n][key]["std"] for n in names]
        ax.bar(
            names,
            means,
            yerr=stds,
            capsize=4,
            color=["tab:green", "tab:olive", "tab:gray", "tab:blue"],
        )
        before = summary["compass"]["js_before" + ("_indep" if "indep" in key else "")]
        ax.axhline(before, color="tab:red", ls="--", label="before (training only)")
        ax.set_title(f"JS(target || training + selection), {title}", fontsize=9)
        ax.set_ylabel("bits (lower is better)")
        ax.legend(fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"{lang}: budget {args.budget}, {args.seeds} seeds, mean ± std", fontsize=10)
    fig.tight_layout()
    with atomic_path(out.with_suffix(".png")) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    print(f"wrote {out}.json and {out}.png")


if __name__ == "__main__":
    main()
