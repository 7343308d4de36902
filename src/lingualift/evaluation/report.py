"""Compare runs: several results files -> one per-language table and a heat map PNG.

Each results file (lingualift's or lm-eval's own) contributes one column,
labelled by the name you give (``base=results/base.json``) or by its file name.
A row is a language: the task entry ``<benchmark>_<lang>`` (or any lm-eval task
whose name ends in a language code) supplies the value of the chosen metric.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_write_text
from lingualift.errors import LingualiftError, require
from lingualift.evaluation.results import read_results
from lingualift.languages import normalize_language

METRICS = ("acc,none", "acc_norm,none", "exact_match,none", "perplexity,none")


def _as_language(token: str) -> str | None:
    if 2 <= len(token) <= 3 and token.isalpha():
        try:
            return normalize_language(token)
        except LingualiftError:
            return None
    return None


def _language_of(task: str) -> str | None:
    """The first language token after the benchmark's name: ``global_mmlu_full_sw_x`` -> sw."""
    for token in re.split(r"[_\-]", task)[1:]:
        lang = _as_language(token)
        if lang:
            return lang
    return None


def per_language(results: dict[str, Any], metric: str | None = None, task: str | None = None):
    """``{lang: value}`` from the language rows of a results dict.

    A language row is one whose name ends in a language code
    (``global_mmlu_full_sw``, ``perplexity_sw``, ``xnli_sw``), which skips the
    subjects, categories and lengths below it in lm-eval's layout and lingualift's.
    A language no such row covers falls back to the first row (not nested deeper
    than one level) whose name holds its code after the benchmark's name.
    """
    from lingualift.evaluation.results import row_depths

    keys = [metric] if metric else list(METRICS)
    rows = [
        (name, metrics)
        for name, metrics in results["results"].items()
        if not task or name.startswith(task.replace("-", "_"))
    ]

    def value(metrics: dict[str, Any]) -> float | None:
        found = next((metrics[k] for k in keys if isinstance(metrics.get(k), int | float)), None)
        return None if found is None or isinstance(found, bool) else float(found)

    out: dict[str, float] = {}
    for name, metrics in rows:
        tokens = re.split(r"[_\-]", name)
        lang = _as_language(tokens[-1]) if len(tokens) > 1 else None
        if lang and lang not in out and value(metrics) is not None:
            out[lang] = value(metrics)
    depth = row_depths(results)
    for name, metrics in rows:
        lang = _language_of(name)
        if lang and lang not in out and depth.get(name, 0) <= 1 and value(metrics) is not None:
            out[lang] = value(metrics)
    return out


def compare(
    files: Sequence[str], metric: str | None = None, task: str | None = None
) -> tuple[list[str], list[str], list[list[float]]]:
    """(run labels, languages, values[lang][run]) of several results files."""
    require(files, "No results files given; pass one or more label=results.json.")
    labels, columns = [], []
    for spec in files:
        label, sep, path = spec.partition("=")
        if not sep or Path(spec).is_file():
            label, path = Path(spec).stem, spec
        labels.append(label)
        column = per_language(read_results(path), metric, task)
        require(
            column,
            f"{path} has no per-language rows{f' for {metric}' if metric else ''}; "
            "pass results of 'lingualift eval' or an lm-eval task per language.",
        )
        columns.append(column)
    langs = sorted({lang for c in columns for lang in c})
    values = [[c.get(lang, float("nan")) for c in columns] for lang in langs]
    return labels, langs, values


def format_comparison(labels: list[str], langs: list[str], values: list[list[float]]) -> str:
    def cell(v: float) -> str:
        return "—" if math.isnan(v) else f"{v:.4f}"

    rows = ["| lang | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    rows += [
        f"| {lang} | " + " | ".join(cell(v) for v in row) + " |"
        for lang, row in zip(langs, values, strict=True)
    ]
    means = []
    for j in range(len(labels)):
        col = [row[j] for row in values if not math.isnan(row[j])]
        means.append(sum(col) / len(col) if col else float("nan"))
    rows.append("| **mean** | " + " | ".join(cell(v) for v in means) + " |")
    return "\n".join(rows)


def heatmap(
    labels: list[str],
    langs: list[str],
    values: list[list[float]],
    path: str | Path,
    title: str = "",
) -> Path:
    """A language x run heat map with the values written in the cells."""
    from lingualift.plotting import pyplot, save_figure

    plt = pyplot()
    import numpy as np

    data = np.array(values, dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(labels), 1.0 + 0.45 * len(langs)))
    image = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_yticks(range(len(langs)), langs)
    finite = data[np.isfinite(data)]
    middle = (finite.max() + finite.min()) / 2 if finite.size else 0
    for i in range(len(langs)):
        for j in range(len(labels)):
            if np.isfinite(data[i, j]):
                ax.text(
                    j,
                    i,
                    f"{data[i, j]:.3f}",
                    ha="center",
                    va="center",
                    color="white" if data[i, j] < middle else "black",
                    fontsize=8,
                )
    fig.colorbar(image, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    return path


def report(
    files: Sequence[str],
    out: str | Path | None = None,
    metric: str | None = None,
    task: str | None = None,
) -> str:
    """Build the comparison; with ``out`` write ``out.md`` and ``out.png``. Returns the table."""
    labels, langs, values = compare(files, metric, task)
    table = format_comparison(labels, langs, values)
    if out is not None:
        out = Path(out)
        atomic_write_text(out.with_suffix(".md"), table + "\n")
        heatmap(labels, langs, values, out.with_suffix(".png"), title=metric or task or "")
    return table
