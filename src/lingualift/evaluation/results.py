"""Results in lm-evaluation-harness's shape, per language / subject, and a printed table.

The JSON has lm-eval's top-level keys (``results``, ``groups``, ``configs``,
``versions``, ``n-shot``, ``n-samples``, ``config``, ``date`` and, optionally,
``samples``), so tools that read lm-eval output can read ours. Task names are
``<benchmark>`` (all questions), ``<benchmark>_<lang>`` and
``<benchmark>_<lang>_<subject>``; metric keys are ``acc,none`` and
``acc_stderr,none`` as in lm-eval.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_write_text
from lingualift.errors import LingualiftError
from lingualift.textio import read_text


def mean_stderr(values: Sequence[float]) -> float:
    """Standard error of the mean with the sample deviation (lm-eval's ``mean_stderr``)."""
    n = len(values)
    if n < 2:
        return float("nan")
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return math.sqrt(var / n)


def accuracy(samples: Sequence[Any]) -> dict[str, float]:
    values = [1.0 if s.correct else 0.0 for s in samples]
    return {
        "acc,none": sum(values) / len(values) if values else float("nan"),
        "acc_stderr,none": mean_stderr(values),
        "n": len(values),
    }


def task_name(benchmark: str, *parts: str) -> str:
    base = benchmark.replace("-", "_")
    return "_".join([base, *[p.replace(" ", "_") for p in parts if p]])


def mcq_results(
    benchmark: str,
    samples: Sequence[Any],
    config: dict[str, Any],
    model_info: dict[str, Any],
    num_fewshot: int = 0,
    log_samples: bool = False,
) -> dict[str, Any]:
    """lm-eval-shaped results of one multiple-choice run."""
    if not samples:
        raise LingualiftError("No samples to summarise; the evaluation scored nothing.")
    by_lang: dict[str, list[Any]] = defaultdict(list)
    by_subject: dict[tuple[str, str], list[Any]] = defaultdict(list)
    by_category: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for s in samples:
        by_lang[s.lang].append(s)
        by_subject[(s.lang, s.subject)].append(s)
        if s.subject_category:
            by_category[(s.lang, s.subject_category)].append(s)

    overall = task_name(benchmark)
    results: dict[str, dict[str, Any]] = {overall: {"alias": overall, **accuracy(samples)}}
    lang_accs = []
    for lang in sorted(by_lang):
        name = task_name(benchmark, lang)
        results[name] = {"alias": f" - {name}", **accuracy(by_lang[lang])}
        lang_accs.append(results[name]["acc,none"])
        for (slang, subject), group in sorted(by_subject.items()):
            if slang == lang:
                sub = task_name(benchmark, lang, subject)
                results[sub] = {"alias": f"  - {subject}", **accuracy(group)}
    # Macro average over languages: each language counts once, whatever its size.
    results[overall]["acc_macro_lang,none"] = sum(lang_accs) / len(lang_accs)
    categories = {
        task_name(benchmark, lang, "category", cat): {"alias": f"{lang}:{cat}", **accuracy(g)}
        for (lang, cat), g in sorted(by_category.items())
    }
    tasks = [t for t in results if t != overall]
    out: dict[str, Any] = {
        "results": results,
        "groups": {overall: results[overall]},
        "group_subtasks": {overall: [task_name(benchmark, lang) for lang in sorted(by_lang)]},
        "subject_categories": categories,
        "configs": {
            t: {"task": t, "num_fewshot": num_fewshot, "metric_list": [{"metric": "acc"}], **config}
            for t in [overall, *tasks]
        },
        "versions": {t: 1.0 for t in [overall, *tasks]},
        "n-shot": {t: num_fewshot for t in [overall, *tasks]},
        "higher_is_better": {t: {"acc": True} for t in [overall, *tasks]},
        "n-samples": {
            task_name(benchmark, lang): {"original": len(g), "effective": len(g)}
            for lang, g in sorted(by_lang.items())
        },
        "config": model_info,
        "date": time.time(),
        "lingualift": {"benchmark": benchmark, "languages": sorted(by_lang)},
    }
    out["n-samples"][overall] = {"original": len(samples), "effective": len(samples)}
    if log_samples:
        out["samples"] = {
            task_name(benchmark, lang): [dataclasses.asdict(s) for s in g]
            for lang, g in sorted(by_lang.items())
        }
    return out


def write_results(results: dict[str, Any], path: str | Path) -> Path:
    """Write results JSON atomically; NaN becomes null so any JSON reader takes it."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    path = Path(path)
    atomic_write_text(path, json.dumps(clean(results), indent=2, ensure_ascii=False, default=str))
    return path


def read_results(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise LingualiftError(f"Results file {path} does not exist; check the path.")
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise LingualiftError(
            f"{path} is not valid JSON ({exc.msg}); pass a results file."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise LingualiftError(
            f"{path} has no 'results' mapping; pass a lingualift/lm-eval results file."
        )
    return data


def format_table(results: dict[str, Any], max_depth: int = 1) -> str:
    """A markdown table like lm-eval's: task, n, metric, value, stderr.

    ``max_depth`` 0 shows the overall row, 1 adds languages, 2 adds subjects.
    """
    rows = ["| Task | n | Metric | Value | | Stderr |", "|---|---:|---|---:|---|---:|"]
    for name, metrics in results["results"].items():
        alias = metrics.get("alias", name)
        depth = len(alias) - len(alias.lstrip())
        if depth > max_depth:
            continue
        for key, value in metrics.items():
            if key in ("alias", "n") or "_stderr" in key or not isinstance(value, int | float):
                continue
            metric, _, _filter = key.partition(",")
            stderr = metrics.get(f"{metric}_stderr,{_filter}" if _filter else f"{metric}_stderr")
            se = f"{stderr:.4f}" if isinstance(stderr, float) and math.isfinite(stderr) else "N/A"
            val = f"{value:.4f}" if isinstance(value, float) else str(value)
            rows.append(f"|{alias}|{metrics.get('n', '')}|{metric}|{val}|±|{se}|")
    return "\n".join(rows)
