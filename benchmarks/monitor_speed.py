"""Speed of the drift monitor: one window's statistics, the embedding path, the Ray backend.

    python benchmarks/monitor_speed.py                                  # statistics only
    python benchmarks/monitor_speed.py --encoder e5-nano --texts 300    # + embedding rate
    python benchmarks/monitor_speed.py --encoder e5-nano --texts 300 --ray

1. **Statistics.** One window of ``--window`` (1,000) synthetic 384-d queries
   against a reference of 3,000 usage rows (sample of 2,000, 16 clusters),
   with the default counts (200 MMD permutations, 500 JS bootstrap resamples,
   MMD on at most 500 rows a side): the time of ``DriftMonitor.update`` (JS,
   MMD, novelty, Holm, explanation), embedding excluded. Median and max of
   ``--repeats`` windows; the target is at most 1 s on 2 cores.
2. **Embedding** (with ``--encoder``): the same ``--texts`` corpus verses
   embedded by the encoder itself (no cache) and through the monitor
   (``StreamMonitor`` on an empty embedding cache: routing, windows, cache
   look-up and insert, the encoder, then the tests), in alternating rounds;
   the monitor's embedding rate counts its time minus the statistics' time.
3. **Ray** (with ``--ray``): the same queries through the monitor with
   ``backend='ray'`` (Ray Data actors embed the cache misses) on an empty cache;
   the reports must equal the local backend's.

Writes docs/continual_monitor_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic(n: int, dim: int, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
    centers = np.random.default_rng(0).normal(size=(24, dim))
    topics = rng.integers(0, 24, n)
    return centers[topics] + shift + 1.5 * rng.normal(size=(n, dim))


def statistics_speed(window: int, repeats: int) -> dict:
    from lingualift.compass.embedding import EmbeddedSet
    from lingualift.continual.monitor import DriftMonitor
    from lingualift.continual.reference import Reference

    rng = np.random.default_rng(1)
    usage = EmbeddedSet.from_vectors(synthetic(3000, 384, rng), "synthetic-384")
    reference = Reference.build(usage, "sw", texts=[f"q{i}" for i in range(3000)], n_clusters=16)
    monitor = DriftMonitor(reference)  # the defaults: 200 permutations, 500 bootstrap
    windows = [
        EmbeddedSet.from_vectors(synthetic(window, 384, rng), "synthetic-384")
        for _ in range(repeats + 1)
    ]
    texts = [f"w{i}" for i in range(window)]
    monitor.update(windows[0], texts=texts)  # warm-up
    seconds = []
    for w in windows[1:]:
        t0 = time.perf_counter()
        monitor.update(w, texts=texts)
        seconds.append(time.perf_counter() - t0)
    return {
        "window": window,
        "dim": 384,
        "reference_rows": 3000,
        "reference_sample": len(reference.sample),
        "clusters": reference.n_clusters,
        "n_permutations": monitor.n_permutations,
        "n_bootstrap": monitor.n_bootstrap,
        "mmd_max_points": monitor.mmd_max_points,
        "seconds_median": round(statistics.median(seconds), 4),
        "seconds_max": round(max(seconds), 4),
        "repeats": repeats,
    }


def corpus_texts(n: int) -> list[str]:
    from lingualift.data import ParallelCorpus

    verses = ParallelCorpus().monolingual("sw", "40-43")
    rng = np.random.default_rng(0)
    texts = [verses[i].text for i in rng.permutation(len(verses))]
    return list(dict.fromkeys(texts))[:n]


def monitor_over(texts: list[str], reference, encoder, backend: str, window: int):
    """(seconds embedding, seconds statistics, reports) of a StreamMonitor over ``texts``."""
    from lingualift.continual.logs import Query
    from lingualift.continual.monitor import DriftMonitor
    from lingualift.continual.stream import StreamMonitor

    monitor = DriftMonitor(reference)
    tested = 0.0
    update = monitor.update

    def timed(*args, **kwargs):
        nonlocal tested
        t0 = time.perf_counter()
        try:
            return update(*args, **kwargs)
        finally:
            tested += time.perf_counter() - t0

    monitor.update = timed  # type: ignore[method-assign]
    stream = StreamMonitor({"sw": monitor}, encoder, window=window, backend=backend)
    queries = [Query(str(i), t, "sw", None, "bench", i + 1) for i, t in enumerate(texts)]
    t0 = time.perf_counter()
    reports = stream.feed(queries)
    total = time.perf_counter() - t0
    return total - tested, tested, reports


def embedding_speed(spec: str, n_texts: int, rounds: int, ray: bool) -> dict:
    from lingualift.compass.embedding import EmbeddedSet, embed_texts
    from lingualift.continual.reference import Reference
    from lingualift.embed import CachedEncoder, EmbeddingCache, get_encoder

    texts = corpus_texts(n_texts * (rounds + 1))
    usage, monitored = texts[:n_texts], texts[n_texts:]
    raw = get_encoder(spec, cache=False)
    raw.encode(usage[:4], progress=False)  # load and warm up the engine
    vectors, name = embed_texts(usage, raw, progress=False)
    reference = Reference.build(EmbeddedSet(vectors, name), "sw", texts=usage, encoder_spec=spec)
    window = max(reference.min_window, n_texts // 3)
    own_s = monitor_s = stats_s = 0.0
    for r in range(rounds):
        chunk = monitored[r * n_texts : (r + 1) * n_texts]
        cache = EmbeddingCache(Path(tempfile.mkdtemp(prefix="monitor-speed-")) / "cache.sqlite")
        for side in ("own", "monitor") if r % 2 == 0 else ("monitor", "own"):
            if side == "own":
                t0 = time.perf_counter()
                for start in range(0, len(chunk), window):  # the encoder on the same batches
                    raw.encode(chunk[start : start + window], progress=False)
                own_s += time.perf_counter() - t0
            else:
                embed, tested, _ = monitor_over(chunk, reference, CachedEncoder(raw, cache),
                                                "local", window)  # fmt: skip
                monitor_s, stats_s = monitor_s + embed, stats_s + tested
    n = rounds * n_texts
    result = {
        "encoder": name,
        "texts": n,
        "window": window,
        "encoder_texts_per_s": round(n / own_s, 2),
        "monitor_texts_per_s": round(n / monitor_s, 2),
        "monitor_vs_encoder": round(own_s / monitor_s, 3),
        "statistics_seconds": round(stats_s, 3),
    }
    if ray:
        chunk = monitored[:n_texts]
        local_cache = EmbeddingCache(Path(tempfile.mkdtemp()) / "cache.sqlite")
        ray_cache = EmbeddingCache(Path(tempfile.mkdtemp()) / "cache.sqlite")
        _, _, local = monitor_over(chunk, reference, CachedEncoder(raw, local_cache), "local",
                                   window)  # fmt: skip
        t0 = time.perf_counter()
        ray_embed, _, remote = monitor_over(chunk, reference, CachedEncoder(raw, ray_cache), "ray",
                                            window)  # fmt: skip
        same = [a.to_dict() for a in local] == [b.to_dict() for b in remote]
        close = all(
            abs(a.tests[k].statistic - b.tests[k].statistic) < 1e-4
            for a, b in zip(local, remote, strict=True)
            for k in a.tests
        )
        result["ray"] = {
            "windows": len(remote),
            "reports_identical": same,
            "statistics_within_1e-4": close,
            "decisions_identical": [a.drift for a in local] == [b.drift for b in remote],
            "seconds_including_ray_start": round(time.perf_counter() - t0, 2),
            "embedding_seconds": round(ray_embed, 2),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--encoder", help="also measure embedding with this encoder (e5-nano)")
    parser.add_argument("--texts", type=int, default=300, help="texts per embedding round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="check the Ray Data backend too")
    parser.add_argument("--out", default="docs/continual_monitor_speed.json")
    args = parser.parse_args()
    os.environ.setdefault("LINGUALIFT_HOME", tempfile.mkdtemp(prefix="monitor-speed-"))

    import torch

    from lingualift.atomic import atomic_write_text

    result = {
        "command": "python benchmarks/monitor_speed.py"
        + (f" --encoder {args.encoder} --texts {args.texts}" if args.encoder else "")
        + (" --ray" if args.ray else ""),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(),
        },
        "statistics": statistics_speed(args.window, args.repeats),
    }
    s = result["statistics"]
    print(f"statistics of one window of {s['window']} x 384-d queries: median "
          f"{s['seconds_median']:.3f} s, max {s['seconds_max']:.3f} s "
          f"({s['n_permutations']} permutations, {s['n_bootstrap']} bootstrap)")  # fmt: skip
    if args.encoder:
        e = result["embedding"] = embedding_speed(args.encoder, args.texts, args.rounds, args.ray)
        print(f"embedding {e['texts']} texts with {e['encoder']}: encoder {e['encoder_texts_per_s']}"
              f" texts/s, monitor {e['monitor_texts_per_s']} texts/s "
              f"(ratio {e['monitor_vs_encoder']})")  # fmt: skip
        if "ray" in e:
            print(f"ray backend: {e['ray']}")
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
