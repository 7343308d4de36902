"""COMPASS samplers: :class:`GapSampler` and the baselines, one interface.

Every sampler is used the same way::

    sampler = GapSampler(encoder="e5-nano", tau=1.0).fit(target_usage, training, pool)
    selection = sampler.select(budget=2000)                         # or unit="tokens"
    selection.records, selection.report
    sampler.profile_.save("profile.safetensors")                    # the fitted clusters

Inputs are lists of :class:`~lingualift.data.Record` or precomputed
:class:`~lingualift.compass.embedding.EmbeddedSet` vectors. All samplers embed
and cluster the same way (so their reports are comparable): ``fit`` learns the
:class:`~lingualift.compass.profile.ClusterProfile` and the gaps, ``select``
only places the pool and chooses; they differ only in how they pick pool rows.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lingualift.compass.clustering import choose_k
from lingualift.compass.embedding import Backend, EmbeddedSet, check_same_space, embed_records
from lingualift.compass.gaps import cluster_shares, gap_priorities, integer_quotas, quotas
from lingualift.compass.profile import ClusterProfile
from lingualift.compass.report import SelectionReport, divergences
from lingualift.data.records import Record
from lingualift.embed import Encoder
from lingualift.errors import LingualiftError, require
from lingualift.languages import normalize_language

Data = Sequence[Record] | EmbeddedSet
Unit = Literal["items", "tokens"]


@dataclasses.dataclass
class Selection:
    """Selected pool rows with cluster, score, language and reason, plus the report."""

    indices: np.ndarray
    """Row numbers in the pool, in selection order."""
    clusters: np.ndarray
    """Cluster of each selected row."""
    scores: np.ndarray
    """Ranking score of each row (cosine to its cluster's target centroid x language prior)."""
    langs: np.ndarray
    """Language of each row."""
    reasons: list[str]
    """Why each row was chosen, in words."""
    report: SelectionReport
    """Per-cluster numbers, languages chosen, divergence before and after."""
    pool_records: list[Record] | None = None
    """The pool's records (absent when the pool was given as raw vectors)."""

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def records(self) -> list[Record]:
        """Selected records, ``meta`` extended with cluster, score, reason, method, pool_index."""
        require(
            self.pool_records is not None,
            "This pool was given as vectors without records; use .indices instead.",
        )
        out = []
        for row, cluster, score, reason in zip(
            self.indices, self.clusters, self.scores, self.reasons, strict=True
        ):
            record = self.pool_records[int(row)]
            meta = {
                **record.meta,
                "cluster": int(cluster),
                "score": round(float(score), 6),
                "reason": reason,
                "method": self.report.method,
                "pool_index": int(row),
            }
            out.append(dataclasses.replace(record, meta=meta))
        return out

    def write(self, path: str | Path) -> Path:
        """Write the selected records (Parquet, JSONL, CSV or TSV by suffix), atomically."""
        from lingualift.data import write_records

        return write_records(self.records, path)


@dataclasses.dataclass
class SelectionSpace:
    """Everything a sampler needs after embedding and clustering."""

    target: EmbeddedSet
    training: EmbeddedSet | None
    pool: EmbeddedSet
    n_clusters: int
    target_labels: np.ndarray
    training_labels: np.ndarray
    pool_labels: np.ndarray
    pool_scores: np.ndarray
    pool_langs: np.ndarray
    costs: np.ndarray
    pool_view: Any
    """The pool as clustering sees it (language-centred or raw); dedup compares these."""


class BaseSampler:
    """Shared embedding, clustering, budgeting and reporting; subclasses choose rows."""

    method = "base"

    def __init__(
        self,
        encoder: str | Encoder = "e5-nano",
        n_clusters: int | None = None,
        seed: int = 0,
        target_lang: str | None = None,
        language_cap: float | None = None,
        backend: Backend = "local",
        tokenizer: str | None = None,
        center_languages: bool = True,
        n_iter: int = 20,
        max_points_per_centroid: int = 256,
        progress: bool = True,
        use_gpu: str | bool = "auto",
    ) -> None:
        require(n_clusters is None or n_clusters >= 1, "n_clusters must be at least 1.")
        require(
            language_cap is None or 0 < language_cap <= 1,
            f"language_cap is a fraction of the budget in (0, 1]; got {language_cap}.",
        )
        self.encoder = encoder
        self.n_clusters = n_clusters
        self.seed = seed
        self.target_lang = normalize_language(target_lang) if target_lang else None
        self.language_cap = language_cap
        self.backend = backend
        self.tokenizer = tokenizer
        self.center_languages = center_languages
        self.n_iter = n_iter
        self.max_points_per_centroid = max_points_per_centroid
        self.progress = progress
        self.use_gpu = use_gpu
        self.timings_: dict[str, float] = {}

    # -- fit ---------------------------------------------------------------------------

    def _embed(self, data: Data | None, role: str) -> EmbeddedSet | None:
        if data is None:
            return None
        if isinstance(data, EmbeddedSet):
            return data
        records = list(data)
        if not records:
            return None
        require(
            all(isinstance(r, Record) for r in records),
            f"The {role} must be a list of Record objects or an EmbeddedSet.",
        )
        return embed_records(
            records, self.encoder, self.backend, self.tokenizer, progress=self.progress
        )

    def fit(
        self, target_usage: Data, training: Data | None = None, pool: Data | None = None
    ) -> BaseSampler:
        """Embed the inputs and fit the cluster profile and the gaps; :meth:`select` then chooses.

        ``training`` is the data the model was already tuned on (may be empty).
        ``pool``, the candidates, joins the clustering as the method prescribes
        (target usage, training data and a sample of the pool); a later
        :meth:`select` without a pool chooses from it. A pool first seen by
        :meth:`select` is placed in the clusters fitted here.
        """
        start = time.perf_counter()
        target = self._embed(target_usage, "target usage")
        require(target is not None, "The target usage is empty; give at least one target item.")
        training_set = self._embed(training, "training data")
        pool_set = self._embed(pool, "pool")
        sets = {"target": target, "training": training_set, "pool": pool_set}
        check_same_space({k: v for k, v in sets.items() if v is not None})
        if self.target_lang is None and target.langs is not None:
            known = [lang for lang in target.langs if lang and lang != "und"]
            if known:
                self.target_lang = Counter(known).most_common(1)[0][0]
        t0 = time.perf_counter()
        k = self.n_clusters or choose_k(len(target))
        profile = ClusterProfile.fit(
            [target, training_set, pool_set],
            k,
            seed=self.seed,
            n_iter=self.n_iter,
            max_points_per_centroid=self.max_points_per_centroid,
            center_languages=self.center_languages,
            use_gpu=self.use_gpu,
        )
        t1 = time.perf_counter()
        self.target_labels_, _ = profile.assign(target)
        self.training_labels_ = (
            profile.assign(training_set)[0] if training_set else np.empty(0, dtype=np.int64)
        )
        profile.histograms = {
            "target": profile.histogram(self.target_labels_),
            "training": profile.histogram(self.training_labels_),
        }
        # Pool rows are ranked by their cosine to the centroid of each cluster's *target*
        # points (the k-means centroid where a cluster has none).
        target_view = np.asarray(profile.view(target), dtype=np.float32)
        anchors = profile.centroids.copy()
        sums = np.zeros_like(anchors)
        np.add.at(sums, self.target_labels_, target_view)
        has_target = np.bincount(self.target_labels_, minlength=k) > 0
        anchors[has_target] = sums[has_target]
        self.anchors_ = anchors / np.maximum(np.linalg.norm(anchors, axis=1, keepdims=True), 1e-12)
        self.profile_ = profile
        self.target_, self.training_, self.pool_ = target, training_set, pool_set
        self.timings_ = {
            "embed_fit": t0 - start,
            "cluster_fit": t1 - t0,
            "assign_fit": time.perf_counter() - t1,
        }
        return self

    # -- select ------------------------------------------------------------------------

    def _check_budget(self, budget: float | None, unit: str, pool: EmbeddedSet) -> float:
        require(unit in ("items", "tokens"), f"unit must be 'items' or 'tokens', got {unit!r}.")
        total = float(len(pool)) if unit == "items" else float(self._costs(pool, unit).sum())
        if budget is None:
            return total
        require(budget > 0, f"The budget must be positive, got {budget}.")
        if budget > total:
            raise LingualiftError(
                f"The budget ({budget:g} {unit}) is larger than the pool ({total:g} {unit}); "
                "lower the budget or use method 'all'."
            )
        return float(budget)

    def _costs(self, pool: EmbeddedSet, unit: str) -> np.ndarray:
        if unit == "items":
            return np.ones(len(pool))
        require(
            pool.costs is not None,
            "A budget in tokens needs token counts; give records or EmbeddedSet(costs=...).",
        )
        return pool.costs

    def _space(self, pool: EmbeddedSet, unit: str) -> SelectionSpace:
        t0 = time.perf_counter()
        pool_view = self.profile_.view(pool)
        pool_labels, pool_scores = self.profile_.assign(pool, self.anchors_, self.progress)
        self.timings_["assign"] = time.perf_counter() - t0
        langs = pool.langs if pool.langs is not None else np.full(len(pool), "und")
        return SelectionSpace(
            self.target_, self.training_, pool, self.profile_.n_clusters, self.target_labels_,
            self.training_labels_, pool_labels, pool_scores, langs, self._costs(pool, unit),
            pool_view,
        )  # fmt: skip

    def select(
        self, pool: Data | None = None, budget: float | None = None, unit: Unit = "items"
    ) -> Selection:
        """Choose pool rows within ``budget`` (items or tokens); returns a :class:`Selection`.

        ``pool`` defaults to the one given to :meth:`fit`; ``budget`` None takes the whole pool.
        """
        if not hasattr(self, "profile_"):
            raise LingualiftError(
                "Call fit(target_usage, training, pool) before select(budget=...)."
            )
        start = time.perf_counter()
        pool_set = self.pool_ if pool is None else self._embed(pool, "pool")
        require(pool_set is not None, "The pool is empty; give at least one candidate item.")
        if pool is not None:
            check_same_space({"target": self.target_, "pool": pool_set})
        self.timings_["embed_pool"] = time.perf_counter() - start
        budget_value = self._check_budget(budget, unit, pool_set)
        space = self._space(pool_set, unit)
        t0 = time.perf_counter()
        rows, reasons, extra = self._choose(space, budget_value)
        rows = np.asarray(rows, dtype=np.int64)
        self.timings_["select"] = time.perf_counter() - t0
        report = self._report(space, rows, budget if budget is not None else None, unit, extra)
        return Selection(
            indices=rows,
            clusters=space.pool_labels[rows],
            scores=space.pool_scores[rows],
            langs=space.pool_langs[rows],
            reasons=reasons,
            report=report,
            pool_records=pool_set.records,
        )

    def _choose(
        self, space: SelectionSpace, budget: float
    ) -> tuple[Any, list[str], dict[str, Any]]:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "n_clusters": self.n_clusters,
            "language_cap": self.language_cap,
            "backend": self.backend,
            "center_languages": self.center_languages,
            "n_iter": self.n_iter,
            "max_points_per_centroid": self.max_points_per_centroid,
        }

    def _report(
        self, space: SelectionSpace, rows: np.ndarray, budget: float | None, unit: str, extra: dict
    ) -> SelectionReport:
        k = space.n_clusters
        selected_labels = space.pool_labels[rows]
        js_before, js_after = divergences(
            space.target_labels, space.training_labels, selected_labels, k
        )
        p_t = cluster_shares(space.target_labels, k)
        p_tr = cluster_shares(space.training_labels, k)
        w = gap_priorities(p_t, p_tr)
        chosen = np.bincount(selected_labels, minlength=k)
        in_pool = np.bincount(space.pool_labels, minlength=k)
        p_sel = chosen / max(1, chosen.sum())
        quota = extra.get("quota")
        clusters = [
            {
                "cluster": c,
                "p_target": round(float(p_t[c]), 6),
                "p_training": round(float(p_tr[c]), 6),
                "p_selected": round(float(p_sel[c]), 6),
                "priority": round(float(w[c]), 6),
                "quota": None if quota is None else round(float(quota[c]), 3),
                "chosen": int(chosen[c]),
                "pool": int(in_pool[c]),
            }
            for c in range(k)
        ]
        languages = dict(Counter(space.pool_langs[rows].tolist()).most_common())
        return SelectionReport(
            method=self.method,
            encoder=space.target.encoder,
            target_lang=self.target_lang,
            n_clusters=k,
            budget=budget,
            unit=unit,
            spent=float(space.costs[rows].sum()),
            n_selected=len(rows),
            n_target=len(space.target),
            n_training=len(space.training) if space.training else 0,
            n_pool=len(space.pool),
            js_before=round(js_before, 6),
            js_after=round(js_after, 6),
            clusters=clusters,
            languages=languages,
            settings={"method": self.method, **self.settings()},
            timings={k: round(v, 3) for k, v in self.timings_.items()},
        )

    # -- shared helpers ----------------------------------------------------------------

    def _language_budget(self, budget: float) -> float:
        return np.inf if self.language_cap is None else self.language_cap * budget

    def _take_in_order(
        self, space: SelectionSpace, order: np.ndarray, budget: float
    ) -> tuple[list[int], float]:
        """Take rows in ``order`` while they fit the budget and the language cap."""
        cap = self._language_budget(budget)
        used_by_lang: Counter[str] = Counter()
        taken: list[int] = []
        spent = 0.0
        for row in order:
            cost = space.costs[row]
            lang = space.pool_langs[row]
            if spent + cost > budget or used_by_lang[lang] + cost > cap:
                if spent >= budget:
                    break
                continue
            taken.append(int(row))
            spent += cost
            used_by_lang[lang] += cost
        return taken, spent


class GapSampler(BaseSampler):
    """COMPASS: fill the semantic gaps between target usage and training data.

    Args:
        encoder: encoder spec or object; the same one embeds target, training and pool.
        n_clusters: ``K``; when None, ``round(sqrt(n_target / 2))`` clipped to
            ``[2, min(256, n_target / 5)]`` (see :func:`choose_k`).
        tau: temperature of the quotas, ``B_c ~ w(c) ** (1 / tau)``.
        language_prior: ``uniform`` or ``typology`` (URIEL similarity to the target language).
        target_language_boost: within a cluster, the ranking score of pool items in the
            target language is raised by this factor (``s * b`` for ``s >= 0``, ``s / b``
            below); 1 is plain COMPASS.
        target_language_first: within a cluster, rank pool items in the target language
            before every other language (each group by score). With either option the
            quotas are plain COMPASS's: only which candidates fill a cluster's quota changes.
        dedup_threshold: drop a candidate whose cosine to an already chosen one in
            its cluster exceeds this (``None`` or ``>= 1`` turns it off).
        seed: makes clustering and ties deterministic.
    """

    method = "compass"

    def __init__(
        self,
        encoder: str | Encoder = "e5-nano",
        n_clusters: int | None = None,
        tau: float = 1.0,
        language_prior: Literal["uniform", "typology"] = "uniform",
        dedup_threshold: float | None = 0.95,
        seed: int = 0,
        target_language_boost: float = 1.0,
        target_language_first: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(encoder=encoder, n_clusters=n_clusters, seed=seed, **kwargs)
        require(tau > 0, f"tau must be positive, got {tau}.")
        require(
            language_prior in ("uniform", "typology"),
            f"language_prior must be 'uniform' or 'typology', got {language_prior!r}.",
        )
        require(
            0 < target_language_boost < float("inf"),
            "target_language_boost must be a positive finite factor (1: off; for 'first' set "
            f"target_language_first); got {target_language_boost}.",
        )
        self.tau = tau
        self.language_prior = language_prior
        self.dedup_threshold = dedup_threshold
        self.target_language_boost = float(target_language_boost)
        self.target_language_first = bool(target_language_first)

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "tau": self.tau,
            "language_prior": self.language_prior,
            "dedup_threshold": self.dedup_threshold,
            "target_language_boost": self.target_language_boost,
            "target_language_first": self.target_language_first,
        }

    def _prior(self, langs: np.ndarray) -> np.ndarray:
        if self.language_prior == "uniform":
            return np.ones(len(langs))
        require(
            self.target_lang is not None,
            "language_prior='typology' needs the target language; set target_lang.",
        )
        from lingualift.compass.typology import similarities

        unique, inverse = np.unique(langs, return_inverse=True)
        sims = similarities(self.target_lang, list(unique))
        return np.array([sims[lang] for lang in unique])[inverse]

    def _choose(
        self, space: SelectionSpace, budget: float
    ) -> tuple[Any, list[str], dict[str, Any]]:
        k = space.n_clusters
        p_t = cluster_shares(space.target_labels, k)
        p_tr = cluster_shares(space.training_labels, k)
        weights = gap_priorities(p_t, p_tr)
        if not (weights > 0).any():
            # Training already covers target usage: follow the target distribution.
            weights = p_t.copy()
        score = space.pool_scores * self._prior(space.pool_langs)
        mine = self._in_target_language(space.pool_langs)
        if mine is None:
            order = np.lexsort((-score, space.pool_labels))  # by cluster, best first
        elif self.target_language_first:
            order = np.lexsort((-score, ~mine, space.pool_labels))  # target language first
        else:
            b = self.target_language_boost
            score = np.where(mine, np.where(score >= 0, score * b, score / b), score)
            order = np.lexsort((-score, space.pool_labels))
        bounds = np.searchsorted(space.pool_labels[order], np.arange(k + 1))
        queues = [_ClusterQueue(order[bounds[c] : bounds[c + 1]]) for c in range(k)]
        filler = _Filler(space, self.dedup_threshold, self._language_budget(budget))
        items = bool((space.costs == 1).all())

        nominal = None
        spent = 0.0
        spill = False
        while budget - spent > 1e-9:
            capacity = np.array([q.remaining_cost(space.costs) for q in queues])
            active_weights = weights if not spill else p_t
            if not (active_weights[capacity > 0] > 0).any():
                if spill or not (capacity > 0).any():
                    break
                spill = True  # every gap cluster is exhausted: follow the target share
                continue
            alloc = quotas(active_weights, budget - spent, capacity, self.tau if not spill else 1)
            if items:
                alloc = integer_quotas(alloc, capacity, round(min(budget - spent, alloc.sum())))
            if nominal is None:
                nominal = alloc.astype(np.float64).copy()
            filler.spilling = spill
            took = 0.0
            for c in np.flatnonzero(alloc > 0):
                took += filler.fill(queues[c], c, float(alloc[c]))
            spent += took
            if took == 0:
                break
        reasons = []
        for row in filler.taken:
            c = int(space.pool_labels[row])
            if weights[c] > 0 and row not in filler.spilled:
                reasons.append(
                    f"cluster {c}: gap {weights[c]:.3g} (target {p_t[c]:.1%} vs training "
                    f"{p_tr[c]:.1%}); cosine {space.pool_scores[row]:.2f} to its target centroid"
                )
            else:
                reasons.append(
                    f"cluster {c}: gap clusters ran short, filled by target share {p_t[c]:.1%}"
                )
            if mine is not None and mine[row]:
                reasons[-1] += (
                    "; target language ranked first"
                    if self.target_language_first
                    else f"; target language boosted x{self.target_language_boost:g}"
                )
        return filler.taken, reasons, {"quota": nominal}

    def _in_target_language(self, langs: np.ndarray) -> np.ndarray | None:
        """Which pool rows are in the target language (None when neither option is on)."""
        if self.target_language_boost == 1.0 and not self.target_language_first:
            return None
        require(
            self.target_lang is not None,
            "A target-language preference needs the target language; set target_lang.",
        )
        return np.asarray(langs) == self.target_lang


class _ClusterQueue:
    """Ranked candidates of one cluster with a cursor."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self.cursor = 0

    def remaining_cost(self, costs: np.ndarray) -> float:
        return float(costs[self.rows[self.cursor :]].sum()) if self.cursor < len(self.rows) else 0.0


class _Filler:
    """Takes ranked rows into a cluster's quota, skipping near-duplicates and capped languages."""

    def __init__(self, space: SelectionSpace, threshold: float | None, lang_cap: float) -> None:
        self.space = space
        self.threshold = threshold if threshold is not None and threshold < 1 else None
        self.lang_cap = lang_cap
        self.used_by_lang: Counter[str] = Counter()
        self.kept: dict[int, np.ndarray] = {}
        self.n_kept: Counter[int] = Counter()
        self.taken: list[int] = []
        self.spilled: set[int] = set()
        self.spilling = False

    def fill(self, queue: _ClusterQueue, cluster: int, quota: float) -> float:
        space = self.space
        got = 0.0
        while queue.cursor < len(queue.rows) and quota - got > 1e-9:
            # Read a block of candidates at once: one gather from a memmap, one matmul.
            size = max(32, int(2 * (quota - got)))
            block = queue.rows[queue.cursor : queue.cursor + size]
            vectors = None
            if self.threshold is not None:
                vectors = np.asarray(space.pool_view[np.sort(block)], dtype=np.float32)
                vectors = vectors[np.argsort(np.argsort(block))]
            consumed = 0
            for i, row in enumerate(block):
                cost = space.costs[row]
                if got + cost > quota + 1e-9:
                    break
                consumed = i + 1
                lang = space.pool_langs[row]
                if self.used_by_lang[lang] + cost > self.lang_cap:
                    continue
                if vectors is not None and self._duplicate(cluster, vectors[i]):
                    continue
                if vectors is not None:
                    self._keep(cluster, vectors[i])
                self.taken.append(int(row))
                if self.spilling:
                    self.spilled.add(int(row))
                self.used_by_lang[lang] += cost
                got += cost
            queue.cursor += consumed
            if consumed < len(block):
                break  # the next candidate does not fit this quota
        return got

    def _keep(self, cluster: int, vector: np.ndarray) -> None:
        n = self.n_kept[cluster]
        store = self.kept.get(cluster)
        if store is None or n == len(store):  # grow by doubling
            grown = np.empty((max(64, 2 * n), len(vector)), dtype=np.float32)
            if store is not None:
                grown[:n] = store
            self.kept[cluster] = store = grown
        store[n] = vector
        self.n_kept[cluster] = n + 1

    def _duplicate(self, cluster: int, vector: np.ndarray) -> bool:
        n = self.n_kept[cluster]
        if n == 0:
            return False
        return bool((self.kept[cluster][:n] @ vector).max() > self.threshold)
