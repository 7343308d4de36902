"""Spherical k-means with FAISS: fit on a sample, assign every point in chunks.

The fit reads at most ``max_points_per_centroid`` rows per centroid (FAISS's
own guidance is 39-256), drawn with the seed, so the cost of the fit does not
grow with the pool. Assignment then streams over the rows in chunks, which
works on a memory-mapped pool larger than RAM.

FAISS on a GPU: with a GPU build of FAISS installed (``faiss-gpu-cu12`` instead
of ``faiss-cpu``) and a GPU visible, ``use_gpu="auto"`` (the default) trains the
k-means and searches the centroids on the GPU(s); ``"true"`` insists (one
sentence when there is none), ``"false"`` stays on the CPU. The GPU is an option,
not a dependency: the CPU build reports no GPUs and everything runs as before.

Rule for ``K`` when it is not given (:func:`choose_k`): ``K = round(sqrt(n_t / 2))``
where ``n_t`` is the number of target-usage items, clipped to ``[2, 256]`` and to
at most ``n_t / 5``, so that every cluster can expect at least five target
points and the shares ``p_t(c)`` are estimated from real counts, not smoothing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lingualift.errors import LingualiftError, require

MAX_K = 256
USE_GPU = ("auto", "true", "false")


def faiss_gpu_count(faiss: Any = None) -> int:
    """GPUs FAISS can use: 0 with the CPU build (which has no ``get_num_gpus``)."""
    if faiss is None:
        import faiss
    get = getattr(faiss, "get_num_gpus", None)
    try:
        return int(get()) if get is not None else 0
    except Exception:  # a GPU build without a working driver
        return 0


def resolve_use_gpu(use_gpu: str | bool, faiss: Any = None) -> bool:
    """Whether FAISS runs on GPU: ``auto`` when one is usable, ``true`` insists, ``false`` not."""
    choice = str(use_gpu).strip().lower()
    require(choice in USE_GPU, f"use_gpu must be one of {', '.join(USE_GPU)}, got {use_gpu!r}.")
    if choice == "false":
        return False
    gpus = faiss_gpu_count(faiss)
    if choice == "true":
        require(
            gpus > 0,
            "use_gpu=true needs a GPU build of FAISS and a visible GPU (faiss reports none); "
            "pip install faiss-gpu-cu12 (in place of faiss-cpu) or set use_gpu=auto.",
        )
    return gpus > 0


def choose_k(n_target: int, n_fit: int | None = None) -> int:
    """The documented rule for the number of clusters (see the module docstring)."""
    require(n_target > 0, "The target usage is empty; give at least one target item.")
    k = round(math.sqrt(n_target / 2))
    k = min(k, MAX_K, max(2, n_target // 5))
    k = max(k, 2)
    if n_fit is not None:
        k = min(k, n_fit)
    return max(k, 1)


def _rows(vectors: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Gather rows (sorted indices read a memmap sequentially) as float32."""
    return np.ascontiguousarray(vectors[np.sort(index)], dtype=np.float32)


class SphericalKMeans:
    """FAISS spherical k-means with a sampled fit and chunked assignment.

    Deterministic for a given ``seed`` (FAISS is seeded and the sample is drawn
    with NumPy's generator).
    """

    def __init__(
        self,
        n_clusters: int,
        n_iter: int = 20,
        max_points_per_centroid: int = 256,
        seed: int = 0,
        chunk_size: int = 65536,
        use_gpu: str | bool = "auto",
    ) -> None:
        require(n_clusters >= 1, f"n_clusters must be at least 1, got {n_clusters}.")
        require(
            str(use_gpu).strip().lower() in USE_GPU,
            f"use_gpu must be one of {', '.join(USE_GPU)}, got {use_gpu!r}.",
        )  # the value now, the GPUs at fit time
        self.use_gpu = use_gpu
        self.on_gpu_ = False
        self.n_clusters = int(n_clusters)
        self.n_iter = int(n_iter)
        self.max_points_per_centroid = int(max_points_per_centroid)
        self.seed = int(seed)
        self.chunk_size = int(chunk_size)
        self.centroids_: np.ndarray | None = None
        self._index = None

    def fit(self, *parts: np.ndarray) -> SphericalKMeans:
        """Fit on the rows of one or more arrays (e.g. target, training, pool sample)."""
        import faiss

        parts = tuple(p for p in parts if p is not None and len(p))
        require(parts, "Nothing to cluster; give a non-empty target usage.")
        total = sum(len(p) for p in parts)
        require(
            total >= self.n_clusters,
            f"Only {total} points to fit {self.n_clusters} clusters; lower n_clusters.",
        )
        cap = self.n_clusters * self.max_points_per_centroid
        rng = np.random.default_rng(self.seed)
        if total > cap:
            # Sample each part in proportion to its size so a huge pool does not
            # crowd out the target (which is usually all kept anyway).
            chosen = []
            for part in parts:
                take = max(1, round(cap * len(part) / total))
                take = min(take, len(part))
                chosen.append(_rows(part, rng.choice(len(part), take, replace=False)))
            sample = np.concatenate(chosen)
        else:
            sample = np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        self.on_gpu_ = resolve_use_gpu(self.use_gpu, faiss)
        kmeans = faiss.Kmeans(
            sample.shape[1],
            self.n_clusters,
            niter=self.n_iter,
            spherical=True,
            seed=self.seed,
            max_points_per_centroid=self.max_points_per_centroid,
            verbose=False,
            gpu=self.on_gpu_,
        )
        kmeans.train(sample)
        self.centroids_ = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
        self._index = self._centroid_index(faiss)
        return self

    def _centroid_index(self, faiss: Any) -> Any:
        """Inner-product search over the centroids (moved to every GPU when running there)."""
        assert self.centroids_ is not None
        index = faiss.IndexFlatIP(self.centroids_.shape[1])
        index.add(self.centroids_)
        return faiss.index_cpu_to_all_gpus(index) if self.on_gpu_ else index

    def _check(self, vectors: np.ndarray) -> None:
        if self.centroids_ is None:
            raise LingualiftError("Fit the clustering before assigning points.")
        require(
            vectors.shape[1] == self.centroids_.shape[1],
            f"Vectors of size {vectors.shape[1]} cannot be assigned to clusters fit on size "
            f"{self.centroids_.shape[1]}; embed everything with one encoder.",
        )

    def predict(
        self, vectors: np.ndarray, score_against: np.ndarray | None = None, progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid per row, in chunks; returns ``(labels, scores)``.

        ``scores`` is the cosine to the assigned centroid, or, with
        ``score_against`` (one unit vector per cluster), the cosine to that
        cluster's row of ``score_against`` (COMPASS: the centroid of the
        cluster's target points).
        """
        self._check(vectors)
        n = len(vectors)
        labels = np.empty(n, dtype=np.int64)
        scores = np.empty(n, dtype=np.float32)
        for start in tqdm(
            range(0, n, self.chunk_size),
            desc="assign clusters",
            unit="chunk",
            disable=not progress or n <= self.chunk_size,
            leave=False,
        ):
            chunk = np.ascontiguousarray(vectors[start : start + self.chunk_size], dtype=np.float32)
            sims, idx = self._index.search(chunk, 1)
            labels[start : start + len(chunk)] = idx[:, 0]
            if score_against is None:
                scores[start : start + len(chunk)] = sims[:, 0]
            else:
                rows = score_against[idx[:, 0]]
                scores[start : start + len(chunk)] = np.einsum("ij,ij->i", chunk, rows)
        return labels, scores
