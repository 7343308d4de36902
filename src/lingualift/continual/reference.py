"""The reference profile of an adapter version: the usage it was built for, as the monitor sees it.

``Reference.build(usage, lang)`` takes the embedded usage sample of one
language (the target usage a version was trained for, or the recent windows
an ECDA update was trained for) and keeps:

- the encoder's name (and the spec that builds it);
- a :class:`~lingualift.compass.profile.ClusterProfile` fitted on the usage,
  whose ``histograms["reference"]`` counts every usage row per cluster;
- an embedding sample (at most ``sample_size`` rows, stored) with its cluster
  labels: the MMD test's reference side and the JS bootstrap's source;
- the novelty radius: the ``quantile`` (default 0.98) order statistic of the
  distances to the nearest centroid of a calibration split (half the usage by
  default) that the clustering did not see (distances of fitted points are
  biased low), the reference novelty rate that follows from its rank, and the
  confidence with which the novelty test bounds the rate the radius really
  cuts at (:func:`lingualift.continual.stats.novelty_test`);
- up to three example texts per cluster (shown when a cluster shrinks);
- the language and the version it belongs to.

``save(folder)`` writes ``folder/reference/`` in one atomic rename:
``profile.safetensors``, ``sample.safetensors`` and ``reference.json``.
``load`` refuses a profile made by another encoder or of another size, in one
sentence.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lingualift.atomic import atomic_dir
from lingualift.compass.clustering import choose_k
from lingualift.compass.embedding import EmbeddedSet
from lingualift.compass.profile import ClusterProfile
from lingualift.continual.stats import exceedance_bound, radius_rank
from lingualift.errors import LingualiftError, require

FORMAT = "lingualift.continual.reference/1"
FOLDER = "reference"
MIN_REFERENCE = 20
"""Fewest usage rows a reference can be built from (clusters, sample and calibration split)."""
# Every window is tested against this one sample, so its own deviation from the usage counts
# as drift: at 200 rows the ecda_drift experiment saw 12.5 false alarms per 100 stable windows
# (alpha 0.05); at 800 rows the MMD p-values were no longer skewed low (docs/continual.md).
SMALL_REFERENCE = 800

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Reference:
    """The reference usage of one adapter version (see the module docstring)."""

    lang: str
    profile: ClusterProfile
    """Fitted clusters; ``histograms['reference']`` holds the usage's counts per cluster."""
    sample: np.ndarray
    """``(m, dim)`` float32 unit rows: a uniform sample of the usage embeddings."""
    sample_labels: np.ndarray
    """Cluster of each sample row."""
    radius: float
    """Novelty radius: cosine distance to the nearest centroid beyond which a query is novel."""
    radius_rank: int
    """1-based rank of the radius among the calibration distances."""
    n_calibration: int
    """Held-out usage rows the radius was taken from."""
    encoder_spec: str | None = None
    """The spec that builds the encoder (e.g. 'e5-nano'), so the monitor can rebuild it."""
    examples: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    """Up to three usage texts per cluster."""
    version: str | None = None
    """The adapter version this reference belongs to (e.g. 'sw/v2')."""
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    novelty_confidence: float = 0.99
    """Confidence of the upper bound the novelty test puts on the radius's exceedance rate."""

    @property
    def encoder(self) -> str:
        return self.profile.encoder

    @property
    def dim(self) -> int:
        return self.profile.dim

    @property
    def n_clusters(self) -> int:
        return self.profile.n_clusters

    @property
    def histogram(self) -> np.ndarray:
        return np.asarray(self.profile.histograms["reference"], dtype=np.int64)

    @property
    def novelty_rate(self) -> float:
        """Expected share of reference-like queries beyond the radius (over calibration draws)."""
        return (self.n_calibration + 1 - self.radius_rank) / (self.n_calibration + 1)

    @property
    def novelty_rate_bound(self) -> float:
        """The share the novelty test allows: an upper ``novelty_confidence`` bound of the rate."""
        return exceedance_bound(self.n_calibration, self.radius_rank, self.novelty_confidence)

    @property
    def min_window(self) -> int:
        """Fewest queries a window needs: 2 per cluster for the JS test, and at least 20."""
        return max(MIN_REFERENCE, 2 * self.n_clusters)

    # -- building --------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        usage: EmbeddedSet,
        lang: str,
        *,
        texts: Sequence[str] | None = None,
        n_clusters: int | None = None,
        seed: int = 0,
        sample_size: int = 2000,
        calibration_fraction: float = 0.5,
        quantile: float = 0.98,
        encoder_spec: str | None = None,
        version: str | None = None,
        novelty_confidence: float = 0.99,
    ) -> Reference:
        """Fit the reference of ``usage`` (one language's queries; see the module docstring).

        Half the usage (``calibration_fraction``) is held out of the clustering to
        calibrate the novelty radius: the more calibration distances, the tighter
        the bound the novelty test must allow for the radius's own draw (with 500
        of 1,000 rows the 0.98 radius cuts at 1.2% to 2.8% of reference-like
        queries in 8 of 10 draws, and the test allows 3.7%; see docs/continual.md).
        """
        n = len(usage)
        require(
            n >= MIN_REFERENCE,
            f"A reference profile needs at least {MIN_REFERENCE} usage queries; got {n}.",
        )
        if n < SMALL_REFERENCE:
            logger.warning(
                "A reference of %d usage queries is small: every window is tested against this "
                "one sample, and below about %d rows its own noise raises false alarms above "
                "alpha (see docs/continual.md); give more usage queries where you have them.",
                n, SMALL_REFERENCE,
            )  # fmt: skip
        require(0 < calibration_fraction < 1, "calibration_fraction must be in (0, 1).")
        require(0.5 <= quantile < 1, "The novelty quantile must be in [0.5, 1).")
        require(
            0.5 <= novelty_confidence < 1, "novelty_confidence must be in [0.5, 1) (e.g. 0.99)."
        )
        if texts is None and usage.records is not None:
            texts = [r.text for r in usage.records]
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        n_cal = max(1, round(calibration_fraction * n))
        calibration, fit = np.sort(order[:n_cal]), np.sort(order[n_cal:])
        vectors = np.asarray(usage.vectors, dtype=np.float32)
        single = np.full(n, lang)
        fit_set = EmbeddedSet(vectors[fit], usage.encoder, None, single[fit])
        k = n_clusters or choose_k(len(fit))
        require(
            1 <= k <= len(fit),
            f"n_clusters={k} is more than the {len(fit)} usage rows the clusters are fitted on.",
        )
        profile = ClusterProfile.fit(fit_set, k, seed=seed, center_languages=False)
        labels, cosine = nearest(vectors, profile.centroids)
        profile.histograms = {"reference": profile.histogram(labels)}
        distances = np.sort(1.0 - cosine[calibration].astype(np.float64))
        rank = radius_rank(len(calibration), quantile)
        keep = np.sort(rng.choice(n, min(sample_size, n), replace=False))
        examples: dict[int, list[str]] = {}
        if texts is not None:
            for row in rng.permutation(n):
                bucket = examples.setdefault(int(labels[row]), [])
                if len(bucket) < 3:
                    bucket.append(str(texts[row]))
        settings = {
            "n_usage": n,
            "n_clusters": k,
            "seed": seed,
            "sample_size": sample_size,
            "calibration_fraction": calibration_fraction,
            "quantile": quantile,
            "novelty_confidence": novelty_confidence,
        }
        return cls(
            lang=lang,
            profile=profile,
            sample=vectors[keep],
            sample_labels=labels[keep],
            radius=float(distances[rank - 1]),
            radius_rank=rank,
            n_calibration=len(calibration),
            encoder_spec=encoder_spec,
            examples=dict(sorted(examples.items())),
            version=version,
            settings=settings,
            novelty_confidence=novelty_confidence,
        )

    # -- placing a window ------------------------------------------------------------------

    def check(self, window: EmbeddedSet) -> None:
        """Refuse vectors of another encoder or size, in one sentence."""
        if window.encoder != self.encoder:
            raise LingualiftError(
                f"The reference profile of {self.version or self.lang} was built with encoder "
                f"{self.encoder} but these queries were embedded with {window.encoder}; monitor "
                f"with {self.encoder_spec or self.encoder} or rebuild the reference."
            )
        require(
            window.dim == self.dim,
            f"The reference profile has {self.dim}-d vectors but the queries have {window.dim}-d "
            "ones; embed them with the reference's encoder.",
        )

    def place(self, window: EmbeddedSet) -> tuple[np.ndarray, np.ndarray]:
        """Cluster and distance to the nearest centroid of each window row."""
        self.check(window)
        labels, cosine = nearest(window.vectors, self.profile.centroids)
        return labels, 1.0 - cosine.astype(np.float64)

    # -- persistence -----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "lang": self.lang,
            "version": self.version,
            "encoder": self.encoder,
            "encoder_spec": self.encoder_spec,
            "dim": self.dim,
            "n_clusters": self.n_clusters,
            "n_sample": len(self.sample),
            "radius": self.radius,
            "radius_rank": self.radius_rank,
            "n_calibration": self.n_calibration,
            "novelty_rate": self.novelty_rate,
            "novelty_confidence": self.novelty_confidence,
            "novelty_rate_bound": self.novelty_rate_bound,
            "min_window": self.min_window,
            "histogram": self.histogram.tolist(),
            "examples": {str(k): v for k, v in self.examples.items()},
            "settings": self.settings,
        }

    def write(self, folder: str | Path) -> Path:
        """Write the three files into an existing ``folder`` (e.g. a temp version folder)."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.profile.save(folder / "profile.safetensors")
        save_file(
            {
                "sample": np.ascontiguousarray(self.sample, dtype=np.float32),
                "labels": np.ascontiguousarray(self.sample_labels, dtype=np.int64),
            },
            str(folder / "sample.safetensors"),
            metadata={"format": FORMAT, "encoder": self.encoder},
        )
        (folder / "reference.json").write_text(
            json.dumps(self.summary(), indent=2, ensure_ascii=False) + "\n", "utf-8"
        )
        return folder

    def save(self, version_folder: str | Path, overwrite: bool = False) -> Path:
        """``version_folder/reference/``, written in one atomic rename."""
        target = Path(version_folder) / FOLDER
        if target.exists() and not overwrite:
            raise LingualiftError(
                f"{target} already exists; pass overwrite=true to rebuild the reference."
            )
        with atomic_dir(target, overwrite=overwrite) as tmp:
            self.write(tmp)
        return target

    @classmethod
    def load(cls, path: str | Path, what: str | None = None) -> Reference:
        """Read ``<version folder>/reference/`` (or the reference folder itself)."""
        from safetensors import safe_open

        path = Path(path)
        folder = path if (path / "reference.json").is_file() else path / FOLDER
        what = what or str(path)
        if not (folder / "reference.json").is_file():
            raise LingualiftError(
                f"{what} has no reference profile; build one with 'lingualift monitor "
                "build_reference=<usage file> ...' (ECDA updates write their own)."
            )
        try:
            meta = json.loads((folder / "reference.json").read_text("utf-8"))
            profile = ClusterProfile.load(folder / "profile.safetensors")
            with safe_open(str(folder / "sample.safetensors"), framework="numpy") as handle:
                sample, labels = handle.get_tensor("sample"), handle.get_tensor("labels")
        except (OSError, ValueError, json.JSONDecodeError, LingualiftError):
            raise LingualiftError(
                f"The reference profile in {folder} is unreadable; rebuild it with "
                "'lingualift monitor build_reference=<usage file> overwrite=true'."
            ) from None
        if meta.get("format") != FORMAT:
            raise LingualiftError(f"{folder} holds no lingualift reference profile; rebuild it.")
        require(
            profile.encoder == meta["encoder"] and sample.shape[1] == profile.dim,
            f"The reference profile in {folder} is inconsistent (encoder or size); rebuild it.",
        )
        return cls(
            lang=meta["lang"],
            profile=profile,
            sample=sample,
            sample_labels=labels,
            radius=float(meta["radius"]),
            radius_rank=int(meta["radius_rank"]),
            n_calibration=int(meta["n_calibration"]),
            encoder_spec=meta.get("encoder_spec"),
            examples={int(k): v for k, v in (meta.get("examples") or {}).items()},
            version=meta.get("version"),
            settings=meta.get("settings") or {},
            # References written before the bound existed hold no confidence: the default.
            novelty_confidence=float(meta.get("novelty_confidence", 0.99)),
        )


def nearest(vectors: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each unit row and its cosine.

    A reference has a few dozen centroids at most: one matrix product is faster
    here than an index search (the same answer as ``ClusterProfile.assign`` on
    a one-language profile, which does not centre).
    """
    cosine = np.asarray(vectors, dtype=np.float32) @ np.asarray(centroids, dtype=np.float32).T
    labels = cosine.argmax(axis=1)
    return labels, cosine[np.arange(len(labels)), labels]
