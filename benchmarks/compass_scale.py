"""COMPASS at scale on precomputed vectors: select time on a 1M pool, FAISS vs MiniBatchKMeans.

    python benchmarks/compass_scale.py                       # 1M x 384 pool, 10k target
    python benchmarks/compass_scale.py --pool 100000 --kmeans-points 50000   # quick

Vectors are random unit vectors written to a memory-mapped .npy (generation is
not timed; embedding is excluded by design). The pool is read through the
memmap, so the run also exercises the out-of-RAM path. Both k-means
implementations run in this one process on the same points, K and iteration
count, so machine load affects both alike. Writes docs/compass_scale.json and
docs/compass_scale.png.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from lingualift.data import CORPUS_LANGUAGES

# Pool languages of the synthetic benchmark: the corpus languages other than the
# target (sw) and English.
LANGS = tuple(lang for lang in CORPUS_LANGUAGES if lang not in ("en", "sw"))


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_pool(path: Path, n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, 100_000):
        out[start : start + 100_000] = unit_rows(rng, min(100_000, n - start), dim)
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=1_000_000)
    parser.add_argument("--target", type=int, default=10_000)
    parser.add_argument("--training", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument(
        "--kmeans-points",
        type=int,
        default=200_000,
        help="points both k-means implementations cluster",
    )
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="docs/compass_scale")
    args = parser.parse_args()

    import faiss

    from lingualift.compass import EmbeddedSet, GapSampler, choose_k

    faiss.omp_set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    result: dict = {
        "args": vars(args),
        "cpu_count": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        t = time.perf_counter()
        pool_vectors = write_pool(Path(tmp) / "pool.npy", args.pool, args.dim, seed=1)
        rng = np.random.default_rng(2)
        # Target usage leans on a region of the space: half of it near 20 topic centres.
        centres = unit_rows(rng, 20, args.dim)
        topical = centres[rng.integers(0, 20, args.target // 2)] + 0.08 * rng.standard_normal(
            (args.target // 2, args.dim), dtype=np.float32
        )
        target = np.concatenate([topical, unit_rows(rng, args.target - args.target // 2, args.dim)])
        training = unit_rows(rng, args.training, args.dim)
        langs = np.array(LANGS)[rng.integers(0, len(LANGS), args.pool)]
        result["generate_s"] = round(time.perf_counter() - t, 2)

        enc = "random-unit-vectors"
        target_set = EmbeddedSet.from_vectors(target, enc, langs=np.full(len(target), "sw"))
        training_set = EmbeddedSet.from_vectors(training, enc, langs=np.full(len(training), "sw"))
        pool_set = EmbeddedSet(pool_vectors, enc, langs=langs)

        t = time.perf_counter()
        sampler = GapSampler(encoder=enc, seed=0, progress=False)
        selection = sampler.fit(target_set, training_set, pool_set).select(budget=args.budget)
        select_s = time.perf_counter() - t
        result["select"] = {
            "seconds": round(select_s, 2),
            "n_clusters": selection.report.n_clusters,
            "n_selected": len(selection),
            "stages_s": selection.report.timings,
            "js_before": selection.report.js_before,
            "js_after": selection.report.js_after,
        }
        print(
            f"select on {args.pool:,} x {args.dim}: {select_s:.1f} s "
            f"(K={selection.report.n_clusters}, stages {selection.report.timings})",
            flush=True,
        )

        # -- FAISS vs scikit-learn on the same points, K and iterations ------------------
        from sklearn.cluster import MiniBatchKMeans

        k = choose_k(args.target)
        points = np.ascontiguousarray(pool_vectors[: args.kmeans_points], dtype=np.float32)

        def run_faiss() -> float:
            t0 = time.perf_counter()
            km = faiss.Kmeans(
                args.dim,
                k,
                niter=args.iters,
                spherical=True,
                seed=0,
                max_points_per_centroid=len(points) // k + 1,
            )
            km.train(points)
            return time.perf_counter() - t0

        def run_sklearn() -> float:
            t0 = time.perf_counter()
            MiniBatchKMeans(
                n_clusters=k,
                max_iter=args.iters,
                batch_size=4096,
                n_init=1,
                init="random",
                max_no_improvement=None,
                tol=0.0,
                random_state=0,
            ).fit(points)
            return time.perf_counter() - t0

        # Interleaved (faiss, sklearn, faiss) so load changes hit both sides.
        faiss_times = [run_faiss()]
        sk = run_sklearn()
        faiss_times.append(run_faiss())
        faiss_s = float(np.mean(faiss_times))
        result["kmeans"] = {
            "points": len(points),
            "k": k,
            "iterations": args.iters,
            "faiss_s": round(faiss_s, 3),
            "faiss_runs_s": [round(x, 3) for x in faiss_times],
            "sklearn_minibatch_s": round(sk, 3),
            "speedup": round(sk / faiss_s, 1),
        }
        print(
            f"k-means {len(points):,} pts K={k} {args.iters} it: faiss {faiss_s:.2f} s, "
            f"MiniBatchKMeans {sk:.2f} s -> {sk / faiss_s:.1f}x",
            flush=True,
        )
    result["loadavg_end"] = os.getloadavg()

    out = Path(args.out)
    from lingualift.atomic import atomic_path, atomic_write_text

    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    stages = {k: v for k, v in result["select"]["stages_s"].items() if not k.startswith("embed")}
    a.barh(list(stages), list(stages.values()), color="tab:blue")
    a.set_xlabel("seconds")
    a.set_title(f"select on {args.pool:,} x {args.dim} (total {select_s:.1f} s, target < 120 s)")
    km = result["kmeans"]
    b.bar(
        ["FAISS", "MiniBatchKMeans"],
        [km["faiss_s"], km["sklearn_minibatch_s"]],
        color=["tab:green", "tab:gray"],
    )
    b.set_ylabel("seconds")
    b.set_title(f"k-means, {km['points']:,} pts, K={k}, {args.iters} it: {km['speedup']}x")
    fig.tight_layout()
    with atomic_path(out.with_suffix(".png")) as tmp_png:
        fig.savefig(tmp_png, format="png", dpi=110)
    print(f"wrote {out}.json and {out}.png")


if __name__ == "__main__":
    main()
