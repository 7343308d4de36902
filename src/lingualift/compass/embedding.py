"""Embed records for COMPASS: one encoder for everything, local or Ray Data backend.

Vectors travel in an :class:`EmbeddedSet` that remembers which encoder made
them, so target, training and pool can never be compared across two encoders
by accident. Large sets are written chunk by chunk into a memory-mapped
``.npy`` file, so a pool can exceed RAM: clustering reads a sample of rows and
assignment streams over the rest.

The Ray backend (:mod:`lingualift.compass.ray_backend`) keeps the cache on the
driver (look-ups and inserts are cheap) and embeds only the cache misses on Ray
Data, where ``map_batches`` runs a stateful actor per worker that loads the
encoder once; it joins a real cluster with lingualift shipped to its workers, and
reads input files on the workers when nothing of them is cached yet.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from lingualift.atomic import atomic_path, atomic_write_text
from lingualift.compass.ray_backend import WorkerRead, connect_ray, embed_on_ray, worker_read
from lingualift.data.records import Record, text_hash
from lingualift.embed import CachedEncoder, Encoder, get_encoder
from lingualift.errors import LingualiftError, require

__all__ = [
    "Backend",
    "EmbeddedSet",
    "LanguageCentered",
    "WorkerRead",
    "check_same_space",
    "connect_ray",
    "count_tokens",
    "embed_records",
    "embed_texts",
    "language_means",
    "resolve_encoder",
    "save_vectors",
    "worker_read",
]

Backend = Literal["local", "ray"]

# Rows per encoder call on the local path; also the unit written to a memmap.
_CHUNK = 4096


@dataclasses.dataclass
class EmbeddedSet:
    """L2-normalised vectors of a dataset plus what is needed to select from it.

    ``vectors`` may be an in-memory array or a read-only ``np.memmap``.
    """

    vectors: np.ndarray
    """Float32 array ``[n, dim]``, rows of unit length."""
    encoder: str
    """Name of the encoder that made the vectors (see ``Encoder.name``)."""
    records: list[Record] | None = None
    """The records the rows belong to, when there are any (absent for raw vectors)."""
    langs: np.ndarray | None = None
    """Language code per row (needed for a pool: caps, priors, the report)."""
    costs: np.ndarray | None = None
    """Tokens per row, for budgets in tokens."""

    def __post_init__(self) -> None:
        require(
            self.vectors.ndim == 2 and len(self.vectors) > 0,
            "Embeddings must be a non-empty 2-D array [n, dim]; got an empty or flat one.",
        )
        n = len(self.vectors)
        if self.records is not None:
            require(
                len(self.records) == n,
                f"{len(self.records)} records but {n} vectors; give one vector per record.",
            )
            if self.langs is None:
                self.langs = np.array([r.lang or "und" for r in self.records])
        if self.langs is not None:
            self.langs = np.asarray(self.langs).astype(str)
            require(len(self.langs) == n, f"{len(self.langs)} languages for {n} vectors.")
        if self.costs is not None:
            self.costs = np.asarray(self.costs, dtype=np.float64)
            require(len(self.costs) == n, f"{len(self.costs)} token counts for {n} vectors.")

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.vectors)

    @classmethod
    def from_vectors(
        cls,
        vectors: np.ndarray,
        encoder: str,
        langs: Sequence[str] | np.ndarray | None = None,
        costs: Sequence[float] | np.ndarray | None = None,
    ) -> EmbeddedSet:
        """Wrap precomputed vectors (normalised here unless they are a memmap)."""
        if not isinstance(vectors, np.memmap):
            vectors = np.asarray(vectors, dtype=np.float32)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return cls(vectors, encoder, None, None if langs is None else np.asarray(langs), costs)

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> EmbeddedSet:
        """Open vectors saved by :func:`save_vectors` (``x.npy`` + ``x.json``)."""
        path = Path(path)
        meta_path = path.with_suffix(".json")
        require(
            path.is_file() and meta_path.is_file(),
            f"{path} or its {meta_path.name} is missing; embed the data again.",
        )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        vectors = np.load(path, mmap_mode="r" if mmap else None)
        return cls(vectors, meta["encoder"])


def save_vectors(vectors: np.ndarray, encoder: str, path: str | Path) -> Path:
    """Write vectors as ``.npy`` plus a ``.json`` naming the encoder, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, np.asarray(vectors, dtype=np.float32))
    atomic_write_text(
        path.with_suffix(".json"), json.dumps({"encoder": encoder, "dim": int(vectors.shape[1])})
    )
    return path


def check_same_space(sets: dict[str, EmbeddedSet]) -> tuple[str, int]:
    """Fail with one sentence unless every set comes from one encoder with one size."""
    names = {role: s.encoder for role, s in sets.items()}
    if len(set(names.values())) > 1:
        detail = ", ".join(f"{role}: {name}" for role, name in names.items())
        raise LingualiftError(
            f"Embeddings come from different encoders ({detail}); embed target, training "
            "and pool with the same encoder."
        )
    dims = {role: s.dim for role, s in sets.items()}
    if len(set(dims.values())) > 1:
        detail = ", ".join(f"{role}: {dim}" for role, dim in dims.items())
        raise LingualiftError(
            f"Embedding sizes differ ({detail}); embed everything with one encoder."
        )
    first = next(iter(sets.values()))
    return first.encoder, first.dim


# -- token counts ---------------------------------------------------------------------

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"


@functools.cache
def _token_pattern() -> Any:
    import re

    # A word, or one CJK character (those scripts do not separate words by spaces).
    return re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")


def count_tokens(texts: Sequence[str], tokenizer: str | None = None) -> np.ndarray:
    """Tokens per text: a Hugging Face tokenizer when named, else words and CJK characters."""
    if tokenizer:
        from lingualift.models import load_tokenizer

        tok = load_tokenizer(tokenizer)
        return np.array(
            [len(ids) for ids in tok(list(texts), add_special_tokens=False)["input_ids"]],
            dtype=np.float64,
        )
    pattern = _token_pattern()
    return np.array([max(1, len(pattern.findall(t))) for t in texts], dtype=np.float64)


# -- embedding backends ----------------------------------------------------------------


def resolve_encoder(encoder: str | Encoder) -> Encoder:
    """An encoder object from a spec string (cached) or the object itself."""
    return get_encoder(encoder) if isinstance(encoder, str) else encoder


def embed_texts(
    texts: Sequence[str],
    encoder: str | Encoder = "e5-nano",
    backend: Backend = "local",
    batch_size: int = 64,
    concurrency: int = 2,
    memmap_path: str | Path | None = None,
    progress: bool = True,
    *,
    ray_address: str | None = None,
    ray_runtime_env: dict[str, Any] | None = None,
    read_from: WorkerRead | None = None,
) -> tuple[np.ndarray, str]:
    """Embed ``texts`` with the cache; returns ``(vectors, encoder name)``.

    Cache hits are read on this process for both backends; only misses are
    encoded, locally in chunks or by Ray Data actors. With ``memmap_path`` the
    vectors are written into a memory-mapped ``.npy`` file and returned as a
    read-only memmap.

    Ray only: ``ray_address`` names the cluster to join and ``ray_runtime_env``
    replaces the workers' default runtime environment (lingualift's package shipped
    from here; :func:`~lingualift.compass.ray_backend.connect_ray`). ``read_from``
    says that ``texts`` are the rows of a file the workers can read
    (:func:`~lingualift.compass.ray_backend.worker_read`): when none of them is
    cached the workers read it themselves instead of this process sending the texts.
    """
    texts = list(texts)
    require(texts, "Nothing to embed; give at least one text.")
    require(backend in ("local", "ray"), f"backend must be 'local' or 'ray', got {backend!r}.")
    enc = resolve_encoder(encoder)
    cached = enc if isinstance(enc, CachedEncoder) else None
    name, dim = enc.name, enc.dim
    if memmap_path is not None:
        memmap_path = Path(memmap_path)
        memmap_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memmap_path.with_name(f".{memmap_path.name}.tmp")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(texts), dim))
    else:
        out = np.empty((len(texts), dim), dtype=np.float32)

    if backend == "local":
        with tqdm(
            total=len(texts),
            desc=f"embed [{name}]",
            unit="text",
            disable=not progress or len(texts) <= _CHUNK,
            leave=False,
        ) as bar:
            for start in range(0, len(texts), _CHUNK):
                chunk = texts[start : start + _CHUNK]
                out[start : start + len(chunk)] = enc.encode(chunk, progress=progress)
                bar.update(len(chunk))
    else:
        hashes = [text_hash(t) for t in texts]
        found = cached.cache.get(name, hashes, dim) if cached else {}
        missing = list(dict.fromkeys(h for h in hashes if h not in found))
        if missing:
            first_text = dict(zip(hashes, texts, strict=True))
            embedded = embed_on_ray(
                {h: first_text[h] for h in missing},
                encoder if isinstance(encoder, str) else enc,
                batch_size=batch_size,
                concurrency=concurrency,
                address=ray_address,
                runtime_env=ray_runtime_env,
                read_from=read_from if not found else None,  # cached rows: send only misses
            )
            vectors = np.stack([embedded[h] for h in missing])
            require(
                vectors.shape[1] == dim,
                f"Ray workers returned vectors of size {vectors.shape[1]}, expected {dim}.",
            )
            if cached:
                cached.cache.put(name, missing, vectors)
            found.update(zip(missing, vectors, strict=True))
        if cached:
            cached.hits += len(texts) - len(missing)
            cached.misses += len(missing)
        for row, key in enumerate(hashes):
            out[row] = found[key]

    if memmap_path is not None:
        out.flush()
        del out
        import os

        os.replace(tmp, memmap_path)
        atomic_write_text(
            memmap_path.with_suffix(".json"), json.dumps({"encoder": name, "dim": dim})
        )
        return np.load(memmap_path, mmap_mode="r"), name
    return out, name


def embed_records(
    records: Sequence[Record],
    encoder: str | Encoder = "e5-nano",
    backend: Backend = "local",
    tokenizer: str | None = None,
    **kwargs: Any,
) -> EmbeddedSet:
    """Embed records into an :class:`EmbeddedSet` (token counts included)."""
    records = list(records)
    vectors, name = embed_texts([r.text for r in records], encoder, backend, **kwargs)
    costs = count_tokens([r.text for r in records], tokenizer)
    return EmbeddedSet(vectors, name, records, None, costs)


class LanguageCentered:
    """A lazy view of vectors with their language's mean removed, rows re-normalised.

    Multilingual encoders put a language-identity direction in every vector, so
    k-means on raw vectors tends to cluster by language; with the target
    language absent from the pool, no pool item would then share a cluster with
    target usage. Removing each language's mean vector (Libovický et al. 2020,
    "On the language neutrality of pre-trained multilingual representations")
    leaves the meaning. Rows are computed on access, so a memmap stays on disk.
    """

    def __init__(self, vectors: np.ndarray, lang_index: np.ndarray, means: np.ndarray) -> None:
        self.vectors = vectors
        self.lang_index = np.asarray(lang_index, dtype=np.int64)
        self.means = np.asarray(means, dtype=np.float32)
        self.shape = vectors.shape

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, index: Any) -> np.ndarray:
        rows = np.asarray(self.vectors[index], dtype=np.float32)
        centered = rows - self.means[self.lang_index[index]]
        return centered / np.maximum(np.linalg.norm(centered, axis=-1, keepdims=True), 1e-12)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[np.arange(len(self))]
        return out.astype(dtype) if dtype is not None else out


def language_means(
    sets: Sequence[tuple[np.ndarray, np.ndarray]], n_langs: int, chunk: int = 65536
) -> np.ndarray:
    """Mean vector per language index over ``(vectors, lang_index)`` pairs, in chunks."""
    dim = sets[0][0].shape[1]
    sums = np.zeros((n_langs, dim), dtype=np.float64)
    counts = np.zeros(n_langs, dtype=np.int64)
    for vectors, index in sets:
        for start in range(0, len(vectors), chunk):
            rows = np.asarray(vectors[start : start + chunk], dtype=np.float32)
            idx = index[start : start + chunk]
            # Sorting by language turns the scatter-add into contiguous block sums.
            order = np.argsort(idx, kind="stable")
            bounds = np.searchsorted(idx[order], np.arange(n_langs + 1))
            sorted_rows = rows[order]
            for lang in np.flatnonzero(np.diff(bounds)):
                sums[lang] += sorted_rows[bounds[lang] : bounds[lang + 1]].sum(axis=0)
            counts += np.bincount(idx, minlength=n_langs)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
