"""The :class:`Encoder` protocol and the batching/normalising base every backend shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from lingualift.errors import LingualiftError


@runtime_checkable
class Encoder(Protocol):
    """Anything that maps texts to L2-normalised float32 vectors of a fixed size."""

    name: str
    """Stable identifier of the encoder and its settings; the embedding cache key."""
    dim: int
    """Size of each vector."""

    def encode(self, texts: Sequence[str], progress: bool = ...) -> np.ndarray:
        """Embed ``texts`` into a float32 array of shape ``[len(texts), dim]``, rows of norm 1."""
        ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class BatchedEncoder:
    """Base class: split into batches, show progress, normalise, check shapes.

    Subclasses implement :meth:`_encode_batch` and set ``name`` and ``dim``.
    """

    name: str
    dim: int
    batch_size: int = 64

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def encode(self, texts: Sequence[str], progress: bool = True) -> np.ndarray:
        texts = list(texts)
        if any(not isinstance(t, str) for t in texts):
            raise LingualiftError("Every text to embed must be a string; found another type.")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with tqdm(
            total=len(texts),
            desc=f"embed [{self.name}]",
            unit="text",
            disable=not progress or len(texts) <= self.batch_size,
            leave=False,
        ) as bar:
            for start in range(0, len(texts), self.batch_size):
                batch = texts[start : start + self.batch_size]
                vectors = np.asarray(self._encode_batch(batch), dtype=np.float32)
                if vectors.shape != (len(batch), self.dim):
                    raise LingualiftError(
                        f"Encoder {self.name} returned shape {vectors.shape} for {len(batch)} "
                        f"texts; expected ({len(batch)}, {self.dim})."
                    )
                out[start : start + len(batch)] = l2_normalize(vectors)
                bar.update(len(batch))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"
