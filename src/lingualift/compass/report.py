"""The selection report: per-cluster gaps, languages chosen, divergence before and after.

``js_before`` is JS(target || training) over the clusters; ``js_after`` is
JS(target || training + selection). Both use add-one smoothed item shares and
log base 2 (0 = same distribution, 1 = disjoint).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from lingualift.atomic import atomic_write_text
from lingualift.compass.gaps import cluster_shares, js_divergence


@dataclasses.dataclass
class SelectionReport:
    """What a sampler chose and why, in numbers."""

    method: str
    """Sampler: compass, random, lang-similarity or all."""
    encoder: str
    """Encoder that embedded target, training and pool."""
    target_lang: str | None
    """Target language (from the target records or given)."""
    n_clusters: int
    """Number of clusters (given, or from the documented rule)."""
    budget: float | None
    """Budget asked for (None for method 'all')."""
    unit: str
    """Budget unit: items or tokens."""
    spent: float
    """Budget used (items or tokens)."""
    n_selected: int
    """Number of selected items."""
    n_target: int
    """Number of target-usage items."""
    n_training: int
    """Number of training items."""
    n_pool: int
    """Number of pool items."""
    js_before: float
    """JS(target || training) over clusters, in bits."""
    js_after: float
    """JS(target || training + selection) over clusters, in bits."""
    clusters: list[dict[str, Any]]
    """Per cluster: p_target, p_training, p_selected, priority, quota, chosen, pool."""
    languages: dict[str, int]
    """Selected items per language, most first."""
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Sampler settings (tau, prior, seed, dedup threshold, ...)."""
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    """Seconds per stage (embed, cluster, assign, select)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> Path:
        """Write the report as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return Path(path)

    def plot(self, path: str | Path, max_clusters: int = 40) -> Path:
        """PNG: per-cluster shares (largest gaps first) and the languages chosen."""
        from lingualift.plotting import pyplot, save_figure

        plt = pyplot()

        rows = sorted(self.clusters, key=lambda c: -c["priority"])[:max_clusters]
        x = np.arange(len(rows))
        fig, (top, bottom) = plt.subplots(
            2, 1, figsize=(max(8, 0.28 * len(rows) + 3), 7.5), gridspec_kw={"height_ratios": [3, 2]}
        )
        width = 0.27
        top.bar(x - width, [c["p_target"] for c in rows], width, label="target usage")
        top.bar(x, [c["p_training"] for c in rows], width, label="training")
        top.bar(x + width, [c["p_selected"] for c in rows], width, label="selected")
        top.set_xticks(x, [str(c["cluster"]) for c in rows], fontsize=7)
        top.set_xlabel("cluster (largest gap first)")
        top.set_ylabel("share")
        top.legend(fontsize=8)
        top.set_title(
            f"{self.method}: {self.n_selected} items, JS(target||training) "
            f"{self.js_before:.3f} -> {self.js_after:.3f} bits"
        )
        langs = list(self.languages.items())[:30]
        bottom.bar([k for k, _ in langs], [v for _, v in langs], color="tab:gray")
        bottom.set_ylabel("selected items")
        bottom.set_xlabel("language")
        fig.tight_layout()
        save_figure(fig, path, dpi=110)
        return Path(path)


def divergences(
    target_labels: np.ndarray,
    training_labels: np.ndarray,
    selected_labels: np.ndarray,
    n_clusters: int,
) -> tuple[float, float]:
    """``(JS(target || training), JS(target || training + selection))`` in bits."""
    p_t = cluster_shares(target_labels, n_clusters)
    before = js_divergence(p_t, cluster_shares(training_labels, n_clusters))
    combined = np.concatenate([training_labels, selected_labels]).astype(np.int64)
    after = js_divergence(p_t, cluster_shares(combined, n_clusters))
    return before, after
