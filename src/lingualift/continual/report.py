"""The drift timeline: each statistic against its threshold, per language, drift marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

PANELS = (
    ("js", "JS divergence (bits)"),
    ("mmd", "MMD²ᵤ (RBF)"),
    ("novelty", "novel share"),
)


def plot_drift(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """One row of panels per language: statistic (line), threshold (dashed), drift (red)."""
    from lingualift.plotting import pyplot, save_figure

    plt = pyplot()
    langs = list(dict.fromkeys(row["lang"] for row in rows)) or ["-"]
    fig, axes = plt.subplots(
        len(langs), len(PANELS), figsize=(4.2 * len(PANELS), 2.6 * len(langs)), squeeze=False
    )
    for i, lang in enumerate(langs):
        mine = [row for row in rows if row["lang"] == lang and row.get("js")]
        for j, (name, label) in enumerate(PANELS):
            ax = axes[i][j]
            xs = [row["window"] for row in mine]
            ax.plot(xs, [row[name]["statistic"] for row in mine], "o-", ms=3, label=name)
            thresholds = [row[name].get("threshold") for row in mine]
            ax.plot(
                [x for x, t in zip(xs, thresholds, strict=True) if t is not None],
                [t for t in thresholds if t is not None],
                "--",
                color="grey",
                label="threshold (α/3)",
            )
            flagged = [row for row in mine if name in row["decision"].get("rejected", [])]
            ax.plot(
                [row["window"] for row in flagged],
                [row[name]["statistic"] for row in flagged],
                "o",
                color="tab:red",
                ms=6,
                label="rejected",
            )
            for row in mine:
                if row["drift"]:
                    ax.axvspan(row["window"] - 0.5, row["window"] + 0.5, color="red", alpha=0.08)
            ax.set_title(f"{lang}: {label}", fontsize=9)
            ax.set_xlabel("window")
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
