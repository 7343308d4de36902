"""What the three experiments share: held-out sets, scoring, per-run results, summaries, plots.

Every trained (or scored) system is a *unit*, e.g. ``compass / sw / seed 1``.
A finished unit is one JSON file in ``<out>/units/``, written atomically, with
a fingerprint of the settings that shaped it; a rerun skips finished units
and refuses ones made with other settings, so an interrupted experiment
resumes where it stopped.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_path, atomic_write_text
from lingualift.config import to_dict
from lingualift.data import ParallelCorpus
from lingualift.errors import LingualiftError
from lingualift.evaluation.heldout import HeldoutSet, score_heldout
from lingualift.languages import DOMINANT_LANGUAGE

# Keys that do not change what a unit computes (where it goes, which units exist).
_BOOKKEEPING = {"out_dir", "seeds", "methods", "langs", "bands", "shift_only", "experiment"}


def fingerprint(config: Any) -> str:
    data = {k: v for k, v in to_dict(config).items() if k not in _BOOKKEEPING}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class UnitStore:
    """``<out>/units/<name>.json`` per finished unit."""

    def __init__(self, root: str | Path, config: Any) -> None:
        self.root = Path(root) / "units"
        self.fingerprint = fingerprint(config)

    def path(self, name: str) -> Path:
        return self.root / f"{name.replace('/', '_')}.json"

    def get(self, name: str) -> dict[str, Any] | None:
        path = self.path(name)
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("fingerprint") != self.fingerprint:
            raise LingualiftError(
                f"{path} was made with other settings; use another out_dir or delete {self.root}."
            )
        return data

    def put(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        data = {"unit": name, "fingerprint": self.fingerprint, **data}
        atomic_write_text(self.path(name), json.dumps(data, indent=2, ensure_ascii=False))
        return data

    def run(self, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The stored result of ``name``, computing (and storing) it when missing."""
        found = self.get(name)
        if found is not None:
            print(f"[experiment] {name}: done earlier, reusing {self.path(name)}", flush=True)
            return found
        print(f"[experiment] {name}: running", flush=True)
        began = time.perf_counter()
        data = compute()
        data["seconds"] = round(time.perf_counter() - began, 1)
        print(f"[experiment] {name}: {data['seconds']:.0f} s  {brief(data)}", flush=True)
        return self.put(name, data)


def brief(data: dict[str, Any]) -> str:
    parts = []
    for lang, m in data.get("metrics", {}).items():
        text = f"{lang} nll {m['nll']:.3f}"
        if m.get("cloze_acc_norm") is not None:
            text += f" cloze {m['cloze_acc_norm']:.2f}"
        parts.append(text)
    return "; ".join(parts)


# -- held-out sets -------------------------------------------------------------------------
def heldout_sets(config: Any, langs: Sequence[str], english: bool) -> HeldoutSet:
    """Held-out verses of ``config.heldout_books``: NLL texts and a cloze set per language.

    The NLL verses are the first ``heldout_per_language`` verses of the books; the
    cloze set is drawn from all of their verses with ``cloze_seed`` (the builder
    of :mod:`lingualift.evaluation.cloze`), the same for every system and seed.
    """
    from lingualift.evaluation.cloze import build_cloze

    corpus = ParallelCorpus()
    codes = list(langs) + ([DOMINANT_LANGUAGE] if english else [])
    texts = {
        code: [
            r.text
            for r in corpus.monolingual(
                code, config.heldout_books, limit=config.heldout_per_language
            )
        ]
        for code in codes
    }
    cloze = {}
    if config.cloze_per_language > 0:
        for code in langs:
            cloze[code] = build_cloze(
                code,
                config.heldout_books,
                n=config.cloze_per_language,
                seed=config.cloze_seed,
                records=corpus.monolingual(code, config.heldout_books),  # parse the corpus once
            )
    return HeldoutSet(texts, cloze)


def evaluate(
    model: Any, tokenizer: Any, sets: HeldoutSet, config: Any, shifcon: Any = None
) -> dict[str, dict[str, Any]]:
    """Held-out NLL and cloze accuracy per language, at the experiment's eval sizes."""
    return score_heldout(
        model, tokenizer, sets, shifcon,
        batch_size=config.eval_batch_size, max_length=config.eval_max_length,
    )  # fmt: skip


class BaseModel:
    """The base model, loaded on first use (a finished experiment re-summarises without it);
    every unit trains on a fresh copy of it."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    @functools.cached_property
    def _loaded(self) -> tuple[Any, Any]:
        from lingualift.models import load_causal_lm

        model, tokenizer = load_causal_lm(self.spec)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer

    @property
    def model(self) -> Any:
        return self._loaded[0]

    @property
    def tokenizer(self) -> Any:
        return self._loaded[1]

    def fresh(self) -> Any:
        # A deep copy is faster than re-loading and leaves the original free of LoRA layers.
        return copy.deepcopy(self.model)


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def write_results(out: Path, config: Any, result: dict[str, Any]) -> Path:
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
