"""A persistent embedding cache keyed by (encoder name, text hash), so nothing is embedded twice.

SQLite holds the vectors: one file, safe for several processes, atomic commits,
and lookups far cheaper than any encoder call.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lingualift.data.records import text_hash
from lingualift.embed.base import Encoder
from lingualift.errors import LingualiftError
from lingualift.paths import cache_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    encoder TEXT NOT NULL,
    hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (encoder, hash)
) WITHOUT ROWID
"""
_LOOKUP_CHUNK = 900  # below SQLite's default limit on bound parameters


class EmbeddingCache:
    """Vectors stored per encoder name and text hash."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else cache_dir("embeddings") / "cache.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._db.commit()

    def get(self, encoder: str, hashes: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT hash, vector FROM embeddings WHERE encoder=? AND hash IN ({marks})",
                (encoder, *chunk),
            )
            for key, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.size != dim:
                    raise LingualiftError(
                        f"Cached vectors for {encoder} have size {vector.size}, not {dim}; "
                        f"delete {self.path} and embed again."
                    )
                found[key] = vector
        return found

    def put(self, encoder: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        rows = [
            (encoder, h, np.ascontiguousarray(v, dtype=np.float32).tobytes())
            for h, v in zip(hashes, vectors, strict=True)
        ]
        with self._db:  # one transaction: all rows land or none
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)

    def stats(self) -> dict[str, int]:
        """Number of cached vectors per encoder."""
        return dict(self._db.execute("SELECT encoder, COUNT(*) FROM embeddings GROUP BY encoder"))

    def close(self) -> None:
        self._db.close()


class CachedEncoder:
    """Wraps an encoder so that texts already embedded are read from the cache."""

    def __init__(self, encoder: Encoder, cache: EmbeddingCache | None = None) -> None:
        self.encoder = encoder
        self._cache = cache
        self.name = encoder.name
        self.dim = encoder.dim
        self.hits = 0
        self.misses = 0

    @property
    def cache(self) -> EmbeddingCache:
        """The cache, opened on first use: building an encoder writes nothing (bad input that
        fails before any text is embedded leaves no cache file behind)."""
        if self._cache is None:
            self._cache = EmbeddingCache()
        return self._cache

    def encode(self, texts: Sequence[str], progress: bool = True) -> np.ndarray:
        texts = list(texts)
        hashes = [text_hash(t) for t in texts]
        found = self.cache.get(self.name, hashes, self.dim)
        missing: dict[str, str] = {}
        for key, text in zip(hashes, texts, strict=True):
            if key not in found:
                missing.setdefault(key, text)
        if missing:
            vectors = self.encoder.encode(list(missing.values()), progress=progress)
            self.cache.put(self.name, list(missing), vectors)
            found.update(zip(missing, vectors, strict=True))
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, key in enumerate(hashes):
            out[row] = found[key]
        return out
