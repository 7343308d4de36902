"""Experiment 4 (``ecda_drift``): keeping an adapter fresh when its usage changes at a known window.

For each language a deployed version ``v1`` is trained on ``D_tr(t)``
(``training_books``, narrative) with a held-out split kept in its folder, and
its reference profile is built from a usage sample of ``stable_books``.
For each seed a production stream is simulated as a traffic log:
``windows_before`` windows of queries from ``stable_books``, then
``windows_after`` windows from ``drift_books`` (the change happens at window
``windows_before``). Systems, all scored on the **old** held-out set (verses
of ``heldout_books``, the narrative usage) and the **new** one (verses of
``drift_books`` that never enter the stream):

- ``none``: ``v1`` kept (no update);
- ``ecda``: :func:`lingualift.jobs.ecda.run_ecda` over the stream (monitor,
  COMPASS selection, update from v1 with replay and the penalty, gate); the
  version current at the end is scored;
- ``naive``: fine-tuning v1 on the same new selection, no replay, no penalty,
  no gate (same steps);
- ``full``: a fresh adapter trained from scratch on ``D_tr`` + the same
  selection (``full_steps``).

Reported: detection delay (windows after the change until the first drift
flag), false alarms per 100 stable windows, NLL on the new and old sets, and
compute (optimizer steps, training tokens). Every system of every seed is a
resumable unit; ``naive`` and ``full`` reuse ECDA's selection (when ECDA
detected nothing, they have nothing to train on and keep ``v1``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from lingualift.adapters.data import Example
from lingualift.jobs.common import BaseModel
from lingualift.jobs.experiments.summary import mean_std, write_results
from lingualift.jobs.experiments.units import Units
from lingualift.stages import StageContext

SYSTEMS = ("none", "ecda", "naive", "full")


def _texts(lang: str, books: str, n: int, seed: int, exclude: set[str] = frozenset()) -> list[Any]:
    import numpy as np

    from lingualift.data import ParallelCorpus

    rows = [r for r in ParallelCorpus().monolingual(lang, books) if r.id not in exclude]
    n = min(n, len(rows))
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), n, replace=False))
    return [rows[i] for i in keep]


def heldout(config: Any, lang: str) -> dict[str, list[Example]]:
    from lingualift.data import ParallelCorpus

    old = ParallelCorpus().monolingual(
        lang, config.heldout_books, limit=config.heldout_per_language
    )
    new = _texts(lang, config.drift_books, config.heldout_per_language, config.data_seed + 1)
    as_examples = lambda rows: [Example(id=r.id, kind="text", text=r.text) for r in rows]  # noqa: E731
    return {"old": as_examples(old), "new": as_examples(new)}


def score(model: Any, tokenizer: Any, sets: dict[str, list[Example]], config: Any) -> dict:
    from lingualift.continual.gate import heldout_nll

    return {
        f"{role}_nll": heldout_nll(
            model, tokenizer, examples, config.eval_max_length, config.eval_batch_size
        )
        for role, examples in sets.items()
    }


def deploy_v1(ctx: StageContext, config: Any, base: BaseModel, lang: str, out: Path) -> dict:
    """v1 in ``out/stores/base``: trained on D_tr, held-out split kept, reference built."""
    from lingualift.adapters.store import AdapterStore
    from lingualift.data import write_records
    from lingualift.jobs.monitor import build_reference
    from lingualift.jobs.train import TrainConfig, read_training_data, train_and_store

    data_dir = out / "data" / lang
    training = _texts(lang, config.training_books, config.training_per_language, config.data_seed)
    usage = _texts(lang, config.stable_books, config.usage_per_language, config.data_seed + 2)
    write_records(training, data_dir / "training.jsonl")
    write_records(usage, data_dir / "usage.jsonl")
    store = AdapterStore(out / "stores" / "base")
    train_config = TrainConfig(
        lang=lang, model=base.spec, data=str(data_dir / "training.jsonl"), data_format="text",
        lora=config.lora, train=dataclasses.replace(config.train, seed=config.data_seed),
        packing=True, eval_fraction=0.1, store=str(store.root), output_dir=str(ctx.out),
    )  # fmt: skip
    trained, result = train_and_store(
        ctx, train_config, read_training_data(train_config), base.fresh(), base.tokenizer, store
    )
    if not (store.path(lang) / "reference").is_dir():
        build_reference(store, lang, str(data_dir / "usage.jsonl"), encoder=config.encoder,
                        seed=config.data_seed)  # fmt: skip
    metrics = score(trained.model, base.tokenizer, heldout(config, lang), config)
    return {"system": "none", "lang": lang, "metrics": metrics,
            "train": {k: trained.metrics[k] for k in ("steps", "tokens")}, **result}  # fmt: skip


def write_stream(config: Any, lang: str, seed: int, path: Path) -> dict[str, Any]:
    """The simulated traffic log of one seed (stable windows, then drifted ones)."""
    from lingualift.atomic import atomic_write_text
    from lingualift.continual.logs import log_row

    exclude = {r.id for r in _texts(lang, config.drift_books, config.heldout_per_language,
                                     config.data_seed + 1)}  # fmt: skip
    before = _texts(lang, config.stable_books, config.windows_before * config.window, 1000 + seed)
    after = _texts(
        lang, config.drift_books, config.windows_after * config.window, 2000 + seed, exclude
    )
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    rows = [
        log_row(f"{lang}-s{seed}-{i}", start + 60 * i, lang, r.text, f"{lang}/v1")
        for i, r in enumerate(before + after)
    ]
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return {"change_window": len(before) // config.window, "queries": len(rows)}


def run_stream(ctx: StageContext, config: Any, base: BaseModel, lang: str, seed: int,
               out: Path) -> dict[str, Any]:  # fmt: skip
    """ECDA over one seed's stream, in a copy of the base store; scores the final current version."""
    from lingualift.adapters.store import AdapterStore
    from lingualift.continual.update import UpdateSettings
    from lingualift.jobs.ecda import EcdaConfig, run_ecda

    folder = out / "streams" / f"{lang}-s{seed}"
    store_root = folder / "store"
    if not store_root.is_dir():
        shutil.copytree(out / "stores" / "base" / lang, store_root / lang)
    log = folder / "traffic.jsonl"
    stream = write_stream(config, lang, seed, log)
    ecda = EcdaConfig(
        input=str(log), langs=[lang], store=str(store_root), model=base.spec,
        pool=str(out / "data" / lang / "pool.jsonl"), out_dir=str(folder / "ecda"),
        window=config.window, seed=seed, usage_windows=2, heldout_fraction=0.2,
        update=UpdateSettings(budget=config.budget, replay_fraction=config.replay_fraction,
                              penalty=config.penalty, penalty_lambda=config.penalty_lambda),
        train=dataclasses.replace(config.train, seed=seed), eval_fraction=0.1,
    )  # fmt: skip
    result = run_ecda(ecda, progress=False, base=base)
    rows = [json.loads(x) for x in (folder / "ecda/monitor/drift.jsonl").read_text().splitlines()]
    change = stream["change_window"]
    stable = [r for r in rows if r["window"] < change]
    flagged = [r["window"] for r in rows if r["window"] >= change and r["drift"]]
    store = AdapterStore(store_root)
    current = store.get(lang)
    model = base.with_adapter(current.path)
    steps = tokens = 0
    for update in result.updates:
        metrics = json.loads((folder / "ecda/updates" / update["id"] / "train/metrics.json")
                             .read_text())  # fmt: skip
        steps, tokens = steps + metrics["steps"], tokens + metrics["tokens"]
    return {
        "system": "ecda", "lang": lang, "seed": seed,
        "metrics": score(model, base.tokenizer, heldout(config, lang), config),
        "detection": {
            "change_window": change,
            "delay": flagged[0] - change if flagged else None,
            "false_alarms": sum(r["drift"] for r in stable),
            "stable_windows": len(stable),
        },
        "updates": result.updates,
        "current": current.name,
        "train": {"steps": steps, "tokens": tokens},
    }  # fmt: skip


def run_baseline(ctx: StageContext, config: Any, base: BaseModel, lang: str, seed: int,
                 system: str, out: Path) -> dict[str, Any]:  # fmt: skip
    """naive (from v1, selection only) or full (fresh adapter on D_tr + selection)."""
    from lingualift.adapters.store import AdapterStore
    from lingualift.jobs.train import TrainConfig, read_training_data, train_and_store

    folder = out / "streams" / f"{lang}-s{seed}" / "ecda" / "updates"
    updates = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not updates:  # ECDA saw no drift: nothing new to train on
        return {"system": system, "lang": lang, "seed": seed, "skipped": "no drift detected",
                "train": {"steps": 0, "tokens": 0}}  # fmt: skip
    selection = updates[0] / "select" / "selection.jsonl"
    v1 = AdapterStore(out / "stores" / "base").get(lang, 1)
    full = system == "full"
    train = dataclasses.replace(
        config.train, seed=seed,
        max_steps=(config.full_steps or 2 * config.train.max_steps) if full else config.train.max_steps,
    )  # fmt: skip
    train_config = TrainConfig(
        lang=lang, model=base.spec, data=str(out / "data" / lang / "training.jsonl") if full else None,
        data_format="text", selection=str(selection), lora=config.lora, train=train,
        packing=True, eval_fraction=0.0,
    )  # fmt: skip
    trained, _ = train_and_store(
        ctx, train_config, read_training_data(train_config), base.fresh(), base.tokenizer, None,
        None if full else v1,
    )  # fmt: skip
    return {
        "system": system, "lang": lang, "seed": seed,
        "metrics": score(trained.model, base.tokenizer, heldout(config, lang), config),
        "train": {k: trained.metrics[k] for k in ("steps", "tokens")},
    }  # fmt: skip


def run_ecda_drift(config: Any, progress: bool = True) -> dict[str, Any]:
    from lingualift.data import write_records
    from lingualift.data.sources import read_source

    out = Path(config.run_dir)
    units = Units(out, config, progress)
    base = BaseModel(config.model)
    results: list[dict[str, Any]] = []
    for lang in config.langs:
        pool = out / "data" / lang / "pool.jsonl"
        if not pool.is_file():
            spec = f"corpus:all-{lang}:{config.pool_books}:{config.pool_per_language}"
            write_records(read_source(spec, seed=config.data_seed, role="pool"), pool)
        v1 = units.run(
            f"v1__{lang}", lambda ctx, lang=lang: deploy_v1(ctx, config, base, lang, out)
        )
        results.append({**v1, "seed": None})
        for seed in config.seeds:
            results.append(units.run(
                f"ecda__{lang}__s{seed}",
                lambda ctx, lang=lang, seed=seed: run_stream(ctx, config, base, lang, seed, out),
            ))  # fmt: skip
            for system in ("naive", "full"):
                results.append(units.run(
                    f"{system}__{lang}__s{seed}",
                    lambda ctx, lang=lang, seed=seed, system=system: run_baseline(
                        ctx, config, base, lang, seed, system, out),
                ))  # fmt: skip
    summary = summarize_ecda(results)
    table = format_ecda(summary)
    plot = plot_ecda(summary, out / "results.png")
    path = write_results(out, config, {"summary": summary, "table": table, "units": results})
    return {"results": path, "plot": plot, "table": table}


def summarize_ecda(units: list[dict[str, Any]]) -> dict[str, Any]:
    """Per language and system: NLLs and compute over seeds; per language: detection."""
    out: dict[str, Any] = {}
    for lang in dict.fromkeys(u["lang"] for u in units):
        mine = [u for u in units if u["lang"] == lang]
        none = next(u for u in mine if u["system"] == "none")
        systems: dict[str, Any] = {}
        for system in SYSTEMS:
            group = [none] if system == "none" else [u for u in mine if u["system"] == system]
            scored = [u.get("metrics") or none["metrics"] for u in group]  # skipped keeps v1
            systems[system] = {
                "new_nll": mean_std([m["new_nll"] for m in scored]),
                "old_nll": mean_std([m["old_nll"] for m in scored]),
                "steps": mean_std([u["train"]["steps"] for u in group]),
                "tokens": mean_std([u["train"]["tokens"] for u in group]),
            }
        streams = [u for u in mine if u["system"] == "ecda"]
        delays = [u["detection"]["delay"] for u in streams]
        stable = sum(u["detection"]["stable_windows"] for u in streams)
        alarms = sum(u["detection"]["false_alarms"] for u in streams)
        out[lang] = {
            "systems": systems,
            "detection": {
                "delay": mean_std([d for d in delays if d is not None]),
                "missed": sum(d is None for d in delays),
                "false_alarms_per_100": 100.0 * alarms / stable if stable else None,
                "stable_windows": stable,
                "promoted": sum(
                    any(x["status"] == "promoted" for x in u["updates"]) for u in streams
                ),
                "seeds": len(streams),
            },
        }
    return out


def _cell(stat: dict[str, Any], digits: int = 3) -> str:
    if stat.get("mean") is None:
        return "–"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}" if stat["n"] > 1 else (
        f"{stat['mean']:.{digits}f}")  # fmt: skip


def format_ecda(summary: dict[str, Any]) -> str:
    lines = [
        "| lang | system | new NLL ↓ | old NLL ↓ | steps | tokens |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for lang, info in summary.items():
        for system, stats in info["systems"].items():
            lines.append(
                f"| {lang} | {system} | {_cell(stats['new_nll'])} | {_cell(stats['old_nll'])} | "
                f"{_cell(stats['steps'], 0)} | {_cell(stats['tokens'], 0)} |"
            )
    lines += ["", "| lang | detection delay (windows) | missed | false alarms / 100 stable "
              "windows | promoted |", "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for lang, info in summary.items():
        d = info["detection"]
        fa = "–" if d["false_alarms_per_100"] is None else f"{d['false_alarms_per_100']:.1f}"
        lines.append(
            f"| {lang} | {_cell(d['delay'], 2)} | {d['missed']}/{d['seeds']} | {fa} "
            f"(of {d['stable_windows']}) | {d['promoted']}/{d['seeds']} |"
        )
    return "\n".join(lines)


def plot_ecda(summary: dict[str, Any], path: Path) -> Path:
    """New vs old NLL per system (one panel per language), error bars = std over seeds."""
    from lingualift.plotting import pyplot, save_figure

    plt = pyplot()
    langs = list(summary)
    fig, axes = plt.subplots(1, len(langs), figsize=(4.6 * len(langs), 3.6), squeeze=False)
    for ax, lang in zip(axes[0], langs, strict=True):
        for system, stats in summary[lang]["systems"].items():
            x, y = stats["old_nll"], stats["new_nll"]
            if x.get("mean") is None:
                continue
            ax.errorbar(x["mean"], y["mean"], xerr=x["std"], yerr=y["std"], fmt="o", capsize=3,
                        label=system)  # fmt: skip
        ax.set_xlabel("old held-out NLL ↓")
        ax.set_ylabel("new held-out NLL ↓")
        ax.set_title(lang)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("ECDA under drift: old vs new usage (lower-left is better)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
