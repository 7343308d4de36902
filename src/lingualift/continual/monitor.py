"""The drift monitor of one language: one window of queries in, one :class:`WindowReport` out.

::

    reference = Reference.load(store.path("sw"))
    monitor = DriftMonitor(reference, alpha=0.05)
    report = monitor.update(window)            # an EmbeddedSet, or records + an encoder
    report.drift, report.tests["mmd"].pvalue, report.grew[0]["examples"]

Each window gets the three tests of :mod:`lingualift.continual.stats` (JS on
cluster histograms with a bootstrap p-value, RBF MMD with a permutation
p-value, novel share with a binomial p-value at the reference's bounded
novelty rate), the Holm-Bonferroni
decision at family level ``alpha``, and an explanation: the clusters whose
share grew or shrank most against the reference, with example queries (from
the window for a cluster that grew, from the reference for one that shrank).
Random draws are seeded by (seed, language, window index), so a window tested
again gives the same report. Cutting a stream into windows, routing by
language and embedding are :class:`lingualift.continual.stream.StreamMonitor`'s job.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from lingualift.compass.embedding import EmbeddedSet, embed_records
from lingualift.continual.reference import Reference
from lingualift.continual.stats import (
    NAMES,
    TestResult,
    holm,
    js_test,
    min_resamples,
    mmd_test,
    novelty_test,
)
from lingualift.data import Record
from lingualift.embed import Encoder
from lingualift.errors import LingualiftError, require


@dataclasses.dataclass
class WindowReport:
    """What the monitor says about one window of one language."""

    lang: str
    index: int
    """0-based window number of this language."""
    n: int
    """Queries in the window."""
    tests: dict[str, TestResult]
    decision: dict[str, Any]
    """``drift``, ``rejected`` tests, Holm ``levels``, the ``rule`` in words."""
    grew: list[dict[str, Any]]
    shrank: list[dict[str, Any]]
    reference: str | None = None
    """The adapter version whose reference the window was compared with."""
    bounds: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Where the window starts and ends (first/last position, time range)."""
    texts: list[str] = dataclasses.field(default_factory=list, repr=False)
    """The window's queries (kept in memory for an update; not written to drift.jsonl)."""

    @property
    def drift(self) -> bool:
        return bool(self.decision.get("drift"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "lang": self.lang,
            "window": self.index,
            "reference": self.reference,
            **self.bounds,
            "n": self.n,
            **{name: test.to_dict() for name, test in self.tests.items()},
            "decision": self.decision,
            "drift": self.drift,
            "grew": self.grew,
            "shrank": self.shrank,
        }


class DriftMonitor:
    """Tests windows of one language against one reference (see the module docstring).

    Args:
        reference: the current version's reference profile.
        alpha: family-wise false-alarm level per stable window (Holm-Bonferroni over 3 tests).
        n_permutations: MMD permutations.
        n_bootstrap: JS bootstrap resamples.
        mmd_max_points: rows per side of the MMD (subsampled above it).
        top_clusters: clusters named as grown and as shrunk.
        encoder: embeds windows given as records (it must be the reference's encoder).
        seed: base seed of the resampling.
    """

    def __init__(
        self,
        reference: Reference,
        *,
        alpha: float = 0.05,
        n_permutations: int = 200,
        n_bootstrap: int = 500,
        mmd_max_points: int = 500,
        top_clusters: int = 3,
        encoder: str | Encoder | None = None,
        seed: int = 0,
    ) -> None:
        require(0 < alpha < 1, f"alpha must be in (0, 1), got {alpha}.")
        need = min_resamples(alpha)
        for name, value in (("n_permutations", n_permutations), ("n_bootstrap", n_bootstrap)):
            require(
                value >= need,
                f"{name}={value} cannot reach the per-test level alpha/3={alpha / 3:.4g}; "
                f"use at least {need}.",
            )
        require(mmd_max_points >= 10, "mmd_max_points must be at least 10.")
        self.reference = reference
        self.alpha = alpha
        self.n_permutations = n_permutations
        self.n_bootstrap = n_bootstrap
        self.mmd_max_points = mmd_max_points
        self.top_clusters = top_clusters
        self.encoder = encoder
        self.seed = seed
        self.windows_seen = 0

    @property
    def min_window(self) -> int:
        return self.reference.min_window

    def _embed(self, window: EmbeddedSet | Sequence[Record]) -> tuple[EmbeddedSet, list[str]]:
        if isinstance(window, EmbeddedSet):
            texts = [r.text for r in window.records] if window.records else []
            return window, texts
        records = list(window)
        require(records, "The window is empty; give at least one query.")
        if self.encoder is None:
            raise LingualiftError(
                "Windows given as records need an encoder; pass encoder= (the reference's: "
                f"{self.reference.encoder_spec or self.reference.encoder})."
            )
        embedded = embed_records(records, self.encoder, progress=False)
        return embedded, [r.text for r in records]

    def update(
        self,
        window: EmbeddedSet | Sequence[Record],
        *,
        index: int | None = None,
        texts: Sequence[str] | None = None,
        bounds: dict[str, Any] | None = None,
    ) -> WindowReport:
        """Test one window (see the module docstring); ``index`` defaults to a running count."""
        embedded, found = self._embed(window)
        texts = list(texts) if texts is not None else found
        self.reference.check(embedded)
        n = len(embedded)
        if n < self.min_window:
            raise LingualiftError(
                f"A window of {n} queries is smaller than the statistics need: at least "
                f"{self.min_window} for the reference of {self.reference.version or self.reference.lang} "
                f"({self.reference.n_clusters} clusters); use larger windows."
            )
        index = self.windows_seen if index is None else index
        self.windows_seen = index + 1
        ref = self.reference
        rng = np.random.default_rng([self.seed, zlib.crc32(ref.lang.encode()), index])
        level = self.alpha / len(NAMES)  # the per-test level of the first Holm step
        labels, distances = ref.place(embedded)
        counts = np.bincount(labels, minlength=ref.n_clusters)
        tests = {
            "js": js_test(counts, ref.histogram, ref.sample_labels, self.n_bootstrap, rng, level),
            "mmd": mmd_test(
                np.asarray(embedded.vectors),
                ref.sample,
                self.n_permutations,
                rng,
                level,
                self.mmd_max_points,
            ),
            "novelty": novelty_test(
                int(np.count_nonzero(distances > ref.radius)),
                n,
                ref.radius_rank,
                ref.n_calibration,
                level,
                ref.novelty_confidence,
            ),
        }
        tests["novelty"].detail.update(self.novel_examples(distances, texts))
        decision = holm({name: t.pvalue for name, t in tests.items()}, self.alpha)
        grew, shrank = self.explain(counts, labels, texts)
        return WindowReport(
            lang=ref.lang,
            index=index,
            n=n,
            tests=tests,
            decision=decision,
            grew=grew,
            shrank=shrank,
            reference=ref.version,
            bounds=dict(bounds or {}),
            texts=texts,
        )

    def novel_examples(self, distances: np.ndarray, texts: Sequence[str]) -> dict[str, Any]:
        """The radius and up to three window queries farthest beyond it (the novelty's evidence)."""
        beyond = np.flatnonzero(distances > self.reference.radius)
        farthest = beyond[np.argsort(-distances[beyond], kind="stable")][:3]
        return {
            "radius": round(self.reference.radius, 6),
            "examples": [texts[i] for i in farthest] if texts else [],
        }

    def explain(
        self, counts: np.ndarray, labels: np.ndarray, texts: Sequence[str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The clusters whose share grew and shrank most, with up to three example queries each."""
        ref = self.reference
        window_share = counts / max(1, counts.sum())
        ref_share = ref.histogram / max(1, ref.histogram.sum())
        change = window_share - ref_share

        def entry(c: int, examples: list[str]) -> dict[str, Any]:
            return {
                "cluster": int(c),
                "window_share": round(float(window_share[c]), 4),
                "reference_share": round(float(ref_share[c]), 4),
                "change": round(float(change[c]), 4),
                "examples": examples,
            }

        grew = []
        for c in np.argsort(-change, kind="stable")[: self.top_clusters]:
            if change[c] <= 0:
                break
            rows = np.flatnonzero(labels == c)[:3]
            grew.append(entry(c, [texts[i] for i in rows] if texts else []))
        shrank = []
        for c in np.argsort(change, kind="stable")[: self.top_clusters]:
            if change[c] >= 0:
                break
            shrank.append(entry(c, list(ref.examples.get(int(c), []))))
        return grew, shrank
