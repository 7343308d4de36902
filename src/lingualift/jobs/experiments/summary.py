"""Summaries of an experiment's units: mean and spread over seeds, a table, a plot, results.json."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_write_text
from lingualift.config import to_dict
from lingualift.jobs.experiments.config import ExperimentConfig

# -- summaries -----------------------------------------------------------------------------
METRICS = ("nll", "cloze_acc", "cloze_acc_norm")


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    n = len(values)
    if not n:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n, "values": values}


def summarize(units: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{system: {lang: {metric: {mean, std, n, values}}}}`` over the seeds of each system."""
    grouped: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for unit in units:
        for lang, metrics in unit["metrics"].items():
            for metric in METRICS:
                if metrics.get(metric) is not None:
                    grouped[unit["system"]][lang][metric].append(metrics[metric])
    return {
        system: {
            lang: {metric: mean_std(vals) for metric, vals in by_metric.items()}
            for lang, by_metric in by_lang.items()
        }
        for system, by_lang in grouped.items()
    }


def _cell(stat: dict[str, Any] | None, digits: int) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    if stat["n"] > 1:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}"


def format_table(summary: dict[str, Any], systems: Sequence[str] | None = None) -> str:
    """A Markdown table: system, language, NLL, cloze acc and acc_norm (mean ± std, n seeds)."""
    lines = [
        "| system | lang | held-out NLL (nats/token) ↓ | cloze acc ↑ | cloze acc_norm ↑ | seeds |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for system in systems or list(summary):
        for lang, stats in summary.get(system, {}).items():
            n = max((s.get("n", 0) for s in stats.values()), default=0)
            lines.append(
                f"| {system} | {lang} | {_cell(stats.get('nll'), 3)} | "
                f"{_cell(stats.get('cloze_acc'), 3)} | {_cell(stats.get('cloze_acc_norm'), 3)} | {n} |"
            )
    return "\n".join(lines)


def plot_bars(
    summary: dict[str, Any],
    systems: Sequence[str],
    path: str | Path,
    title: str,
    metrics: Sequence[tuple[str, str]] = (
        ("nll", "held-out NLL (nats/token) ↓"),
        ("cloze_acc_norm", "cloze acc_norm ↑"),
    ),
) -> Path:
    """Grouped bars (one group per language, one bar per system), error bars = std over seeds."""
    from lingualift.plotting import pyplot, save_figure

    plt = pyplot()

    langs = list(dict.fromkeys(lang for s in systems for lang in summary.get(s, {})))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8))
    axes = list(axes) if len(metrics) > 1 else [axes]
    width = 0.8 / max(len(systems), 1)
    for ax, (metric, label) in zip(axes, metrics, strict=True):
        lows = []
        for i, system in enumerate(systems):
            xs, ys, errs = [], [], []
            for j, lang in enumerate(langs):
                stat = summary.get(system, {}).get(lang, {}).get(metric)
                if stat and stat.get("mean") is not None:
                    xs.append(j + i * width)
                    ys.append(stat["mean"])
                    errs.append(stat["std"])
                    lows.append(stat["mean"] - stat["std"])
            if xs:
                ax.bar(xs, ys, width, yerr=errs, capsize=3, label=system)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(langs))], langs)
        ax.set_ylabel(label)
        if metric == "nll" and lows:
            ax.set_ylim(bottom=max(0.0, min(lows) - 0.3))
        if metric.startswith("cloze"):
            ax.axhline(0.25, color="grey", lw=0.8, ls="--")
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def write_results(out: Path, config: ExperimentConfig, result: dict[str, Any]) -> Path:
    import os
    import platform

    import torch

    result = {
        "config": to_dict(config),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "loadavg_at_end": os.getloadavg(),
            "platform": platform.platform(),
        },
        **result,
    }
    path = out / "results.json"
    atomic_write_text(path, json.dumps(result, indent=2, ensure_ascii=False))
    return path
