"""The fitted cluster profile: what COMPASS and the drift monitor learn from embeddings.

``ClusterProfile.fit(sets, n_clusters)`` learns, from one or more embedded sets
of one encoder:

- each language's mean vector (multilingual encoders put a language-identity
  direction in every vector; clustering sees vectors with their language's
  mean removed, so clusters follow meaning, not language — see
  :class:`~lingualift.compass.embedding.LanguageCentered`);
- ``K`` spherical k-means centroids (FAISS, fitted on a sample, see
  :class:`~lingualift.compass.clustering.SphericalKMeans`).

Afterwards :meth:`assign` and :meth:`distances` place any new vectors of the
same encoder (a pool, a window of production queries) without refitting, and
:meth:`save` / :meth:`load` keep the profile as one safetensors file whose
header carries the encoder, the settings and named histograms (a reference
histogram of the usage it was built for, say). A language the profile has not
seen is centred on its own mean in the data being assigned.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lingualift.atomic import atomic_path
from lingualift.compass.clustering import SphericalKMeans
from lingualift.compass.embedding import (
    EmbeddedSet,
    LanguageCentered,
    check_same_space,
    language_means,
)
from lingualift.errors import LingualiftError, require

FORMAT = "lingualift.compass.profile/1"
PROFILE_FILE = "profile.safetensors"


@dataclasses.dataclass
class ClusterProfile:
    """Centroids, language means and the encoder they belong to (see the module docstring)."""

    encoder: str
    """Name of the encoder whose vectors this profile places."""
    centroids: np.ndarray
    """``(K, dim)`` unit-length float32 centroids."""
    language_means: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    """Language code -> mean raw vector, removed before assignment (empty: no centring)."""
    histograms: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    """Named per-cluster counts kept with the profile (e.g. ``reference``)."""
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    """How it was fitted: n_clusters, seed, n_iter, max_points_per_centroid, n_fit."""

    @property
    def n_clusters(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def centered(self) -> bool:
        return bool(self.language_means)

    # -- fitting ---------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        sets: EmbeddedSet | Sequence[EmbeddedSet | None],
        n_clusters: int,
        *,
        seed: int = 0,
        n_iter: int = 20,
        max_points_per_centroid: int = 256,
        center_languages: bool = True,
        use_gpu: str | bool = "auto",
    ) -> ClusterProfile:
        """Fit on the rows of ``sets`` (e.g. target usage, training data and a pool sample).

        Each set is sampled in proportion to its size when all of them together
        hold more than ``n_clusters * max_points_per_centroid`` rows.
        """
        present = [sets] if isinstance(sets, EmbeddedSet) else [s for s in sets if s is not None]
        require(present, "Nothing to cluster; give at least one non-empty set of embeddings.")
        encoder, _ = check_same_space({f"set {i}": s for i, s in enumerate(present)})
        means: dict[str, np.ndarray] = {}
        views: list[Any] = [s.vectors for s in present]
        langs = [np.full(len(s), "und") if s.langs is None else s.langs for s in present]
        names, inverse = np.unique(np.concatenate(langs), return_inverse=True)
        # With one language there is no language direction to remove.
        if center_languages and len(names) >= 2:
            bounds = np.cumsum([0, *[len(s) for s in present]])
            index = [inverse[bounds[i] : bounds[i + 1]] for i in range(len(present))]
            table = language_means(
                [(s.vectors, idx) for s, idx in zip(present, index, strict=True)], len(names)
            )
            means = {str(name): table[i] for i, name in enumerate(names)}
            views = [
                LanguageCentered(s.vectors, idx, table)
                for s, idx in zip(present, index, strict=True)
            ]
        kmeans = SphericalKMeans(
            n_clusters, n_iter, max_points_per_centroid, seed, use_gpu=use_gpu
        ).fit(*views)
        assert kmeans.centroids_ is not None
        settings = {
            "n_clusters": n_clusters,
            "seed": seed,
            "n_iter": n_iter,
            "max_points_per_centroid": max_points_per_centroid,
            "center_languages": center_languages,
            "n_fit": int(sum(len(s) for s in present)),
        }
        profile = cls(encoder, kmeans.centroids_, means, {}, settings)
        profile._kmeans = kmeans
        return profile

    # -- placing new vectors ---------------------------------------------------------------

    def _check(self, data: EmbeddedSet) -> None:
        if data.encoder != self.encoder:
            raise LingualiftError(
                f"These embeddings come from {data.encoder} but the cluster profile was fitted "
                f"on {self.encoder}; embed them with {self.encoder} or refit the profile."
            )
        require(
            data.dim == self.dim,
            f"Embeddings of size {data.dim} cannot be placed in a profile of size {self.dim}; "
            "embed everything with one encoder.",
        )

    def view(self, data: EmbeddedSet) -> Any:
        """The vectors as the profile compares them: raw, or with their language's mean removed."""
        self._check(data)
        if not self.centered:
            return data.vectors
        langs = np.full(len(data), "und") if data.langs is None else data.langs
        names, inverse = np.unique(langs, return_inverse=True)
        known = list(self.language_means)
        unseen = [str(lang) for lang in names if lang not in self.language_means]
        position = {lang: i for i, lang in enumerate(known + unseen)}
        index = np.array([position[str(lang)] for lang in names], dtype=np.int64)[inverse]
        table = np.stack([self.language_means[lang] for lang in known])
        if unseen:  # centred on their own mean in the data given
            rows = np.flatnonzero(index >= len(known))
            extra = language_means([(data.vectors[rows], index[rows] - len(known))], len(unseen))
            table = np.concatenate([table, extra])
        return LanguageCentered(data.vectors, index, table)

    def _index(self) -> Any:
        kmeans = getattr(self, "_kmeans", None)
        if kmeans is None:
            import faiss

            kmeans = SphericalKMeans(self.n_clusters)
            kmeans.centroids_ = np.ascontiguousarray(self.centroids, dtype=np.float32)
            kmeans._index = faiss.IndexFlatIP(self.dim)
            kmeans._index.add(kmeans.centroids_)
            self._kmeans = kmeans
        return kmeans

    def assign(
        self, data: EmbeddedSet, score_against: np.ndarray | None = None, progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid of each row and its cosine (or the cosine to ``score_against[c]``)."""
        return self._index().predict(self.view(data), score_against, progress)

    def distances(self, data: EmbeddedSet) -> np.ndarray:
        """Cosine distance of each row to its nearest centroid (0 = on a centroid, 2 = opposite)."""
        _, cosine = self.assign(data)
        return 1.0 - cosine.astype(np.float64)

    def histogram(self, labels: np.ndarray) -> np.ndarray:
        """Rows per cluster."""
        return np.bincount(np.asarray(labels, dtype=np.int64), minlength=self.n_clusters)

    # -- persistence -----------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """One safetensors file (atomic); a folder path gets ``profile.safetensors`` inside."""
        from safetensors.numpy import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path / PROFILE_FILE
        tensors = {"centroids": np.ascontiguousarray(self.centroids, dtype=np.float32)}
        for lang, mean in self.language_means.items():
            tensors[f"mean.{lang}"] = np.ascontiguousarray(mean, dtype=np.float32)
        for name, hist in self.histograms.items():
            tensors[f"histogram.{name}"] = np.asarray(hist, dtype=np.int64)
        metadata = {
            "format": FORMAT,
            "encoder": self.encoder,
            "settings": json.dumps(self.settings, sort_keys=True),
        }
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ClusterProfile:
        """Read a profile written by :meth:`save` (the file or the folder holding it)."""
        from safetensors import safe_open

        path = Path(path)
        if path.is_dir():
            path = path / PROFILE_FILE
        require(path.is_file(), f"{path} does not exist; fit and save a cluster profile first.")
        try:
            with safe_open(str(path), framework="numpy") as handle:
                meta = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        except Exception:
            raise LingualiftError(
                f"{path} is not a readable safetensors file; fit and save the profile again."
            ) from None
        if meta.get("format") != FORMAT or "centroids" not in tensors:
            raise LingualiftError(f"{path} holds no lingualift cluster profile; refit it.")
        return cls(
            encoder=meta["encoder"],
            centroids=tensors["centroids"],
            language_means={
                k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("mean.")
            },
            histograms={
                k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("histogram.")
            },
            settings=json.loads(meta.get("settings", "{}")),
        )
