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
- ``ecda``: :func:`lingualift.workflows.ecda.ecda_over_log` over the stream (monitor,
  COMPASS selection, update from v1 with replay and the penalty, gate; after a
  promotion the new reference settles on ``settle_rows`` queries); the version
  current at the end is scored;
- ``ecda+usage`` and ``ecda+lang`` (``variants``): ECDA over the same stream, the
  update also training on the drifted queries minus the gate's split
  (``update.usage_as_training``), or COMPASS ranking the pool's
  target-language verses first within each cluster
  (``update.target_language_first``; the pool holds
  ``pool_target_per_language`` of them, never a verse of a stream, held-out
  set, D_tr or the reference);
- ``naive``: fine-tuning v1 on the same new selection, no replay, no penalty,
  no gate, for as many steps as ECDA's update (so only replay and the penalty
  differ);
- ``full``: a fresh adapter trained from scratch on ``D_tr`` + the same
  selection, ``train.epochs`` passes over it (or ``full_steps``).

Reported: detection delay (windows after the change until the first drift
flag), false alarms per 100 tested stable windows (windows held while a
reference settles are not tests, and are counted apart), NLL on the new and
old sets with paired differences against v1 (every ECDA system also against
full and the variants against plain ECDA) and their 95% bootstrap intervals
over held-out verses and seeds, compute (optimizer steps, training tokens;
an ECDA system's counts every update it trained, a false alarm's too, and the
drifted queries ecda+usage adds) and the issue's goals per ECDA system (share
of full retraining's new-set gain recovered, share of full's compute, the old
set's relative change). Every system of every seed is a
resumable unit; ``naive`` and ``full`` reuse the selection of the update the
change triggered (when ECDA detected nothing, they have nothing to train on
and keep ``v1``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from lingualift.adapters.data import Example
from lingualift.jobs.experiments.config import ECDA_VARIANTS, EcdaDriftConfig
from lingualift.jobs.experiments.stats import paired_difference, score_texts
from lingualift.jobs.experiments.summary import mean_std, write_results
from lingualift.jobs.experiments.units import Units
from lingualift.stages import StageContext
from lingualift.workflows.base import LoadedBase

ECDA_SYSTEMS = ("ecda", *ECDA_VARIANTS)
SYSTEMS = ("none", *ECDA_SYSTEMS, "naive", "full")


def _texts(lang: str, books: str, n: int, seed: int, exclude: set[str] = frozenset()) -> list[Any]:
    from lingualift.data import ParallelCorpus

    rows = [r for r in ParallelCorpus().monolingual(lang, books) if r.id not in exclude]
    n = min(n, len(rows))
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), n, replace=False))
    return [rows[i] for i in keep]


def heldout(config: EcdaDriftConfig, lang: str) -> dict[str, list[Example]]:
    from lingualift.data import ParallelCorpus

    old = ParallelCorpus().monolingual(
        lang, config.heldout_books, limit=config.heldout_per_language
    )
    new = _texts(lang, config.drift_books, config.heldout_per_language, config.data_seed + 1)
    as_examples = lambda rows: [Example(id=r.id, kind="text", text=r.text) for r in rows]  # noqa: E731
    return {"old": as_examples(old), "new": as_examples(new)}


def score(
    model: Any, tokenizer: Any, sets: dict[str, list[Example]], config: EcdaDriftConfig
) -> dict:
    """``{old,new}_nll`` and, for the paired statistics, ``{old,new}_per_text``."""
    out: dict[str, Any] = {}
    for role, examples in sets.items():
        scored = score_texts(model, tokenizer, [e.text for e in examples],
                             config.eval_max_length, config.eval_batch_size)  # fmt: skip
        out[f"{role}_nll"], out[f"{role}_per_text"] = scored["nll"], scored["per_text"]
    return out


def deploy_v1(
    ctx: StageContext, config: EcdaDriftConfig, base: LoadedBase, lang: str, out: Path
) -> dict:
    """v1 in ``out/stores/base``: trained on D_tr, held-out split kept, reference built."""
    from lingualift.adapters.store import AdapterStore
    from lingualift.continual.deployed import build_reference
    from lingualift.data import write_records
    from lingualift.workflows.training import TrainConfig, read_training_data, train_and_store

    data_dir = out / "data" / lang
    training = _texts(lang, config.training_books, config.training_per_language, config.data_seed)
    usage = _texts(lang, config.stable_books, config.usage_per_language, config.data_seed + 2)
    write_records(training, data_dir / "training.jsonl")
    write_records(usage, data_dir / "usage.jsonl")
    store = AdapterStore(out / "stores" / "base")
    train_config = TrainConfig(
        **base.settings.model_kwargs(), lang=lang, data=str(data_dir / "training.jsonl"),
        data_format="text", lora=config.lora, train=dataclasses.replace(config.train, seed=config.data_seed),
        packing=True, eval_fraction=0.1, store=str(store.root), out_dir=str(ctx.out),
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


def pool_target(config: EcdaDriftConfig, lang: str) -> list[Any]:
    """The pool's target-language verses: none held out, in D_tr or in the reference usage."""
    from lingualift.data import Record

    if config.pool_target_per_language <= 0:
        return []
    taken = {e.id for examples in heldout(config, lang).values() for e in examples}
    taken |= {r.id for r in _texts(lang, config.training_books, config.training_per_language,
                                   config.data_seed)}  # fmt: skip
    taken |= {r.id for r in _texts(lang, config.stable_books, config.usage_per_language,
                                   config.data_seed + 2)}  # fmt: skip
    rows = _texts(lang, config.pool_books, config.pool_target_per_language, config.data_seed + 3,
                  taken)  # fmt: skip
    return [Record(f"{lang}:{r.id}", r.text, lang, r.source, {**r.meta, "verse": r.id})
            for r in rows]  # fmt: skip


def write_stream(config: EcdaDriftConfig, lang: str, seed: int, path: Path) -> dict[str, Any]:
    """The simulated traffic log of one seed (stable windows, then drifted ones)."""
    from lingualift.atomic import atomic_write_text
    from lingualift.continual.logs import log_row

    # Never a pool verse: selecting a query itself would flatter the gate of ecda+lang.
    pooled = {r.meta["verse"] for r in pool_target(config, lang)}
    exclude = pooled | {r.id for r in _texts(lang, config.drift_books,
                                             config.heldout_per_language, config.data_seed + 1)}  # fmt: skip
    # The reference was built from these verses; replaying them would flatter the monitor.
    reference = pooled | {r.id for r in _texts(lang, config.stable_books,
                                               config.usage_per_language, config.data_seed + 2)}  # fmt: skip
    before = _texts(lang, config.stable_books, config.windows_before * config.window, 1000 + seed,
                    reference)  # fmt: skip
    after = _texts(
        lang, config.drift_books, config.windows_after * config.window, 2000 + seed, exclude
    )
    # Queries of one regime arrive in no particular order; in corpus order each window would
    # hold a few chapters' topics, which the monitor rightly calls drift from the whole books.
    rng = np.random.default_rng(seed)
    before = [before[i] for i in rng.permutation(len(before))]
    after = [after[i] for i in rng.permutation(len(after))]
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    rows = [
        log_row(f"{lang}-s{seed}-{i}", start + 60 * i, lang, r.text, f"{lang}/v1")
        for i, r in enumerate(before + after)
    ]
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return {"change_window": len(before) // config.window, "queries": len(rows)}


def run_stream(ctx: StageContext, config: EcdaDriftConfig, base: LoadedBase, lang: str, seed: int,
               out: Path, system: str = "ecda") -> dict[str, Any]:  # fmt: skip
    """An ECDA system over one seed's stream, in a copy of the base store; scores the final
    current version. Every system reads the same stream (written again, identically)."""
    from lingualift.adapters.store import AdapterStore
    from lingualift.continual.update import UpdateSettings
    from lingualift.workflows.ecda import EcdaConfig, ecda_over_log

    suffix = "" if system == "ecda" else "-" + system.split("+", 1)[1]
    folder = out / "streams" / f"{lang}-s{seed}{suffix}"
    store_root = folder / "store"
    if not store_root.is_dir():
        shutil.copytree(out / "stores" / "base" / lang, store_root / lang)
    log = folder / "traffic.jsonl"
    stream = write_stream(config, lang, seed, log)
    ecda = EcdaConfig(
        input=str(log), langs=[lang], store=str(store_root), **base.settings.model_kwargs(),
        pool=str(out / "data" / lang / "pool.jsonl"), out_dir=str(folder / "ecda"),
        window=config.window, seed=seed, usage_windows=2, heldout_fraction=0.2,
        settle_rows=config.settle_rows,
        update=UpdateSettings(
            budget=config.budget, replay_fraction=config.replay_fraction, penalty=config.penalty,
            penalty_lambda=config.penalty_lambda, usage_as_training=system == "ecda+usage",
            target_language_first=system == "ecda+lang",
        ),
        train=dataclasses.replace(config.train, seed=seed), eval_fraction=0.1,
    )  # fmt: skip
    result = ecda_over_log(ecda, progress=False, base=base)
    rows = [json.loads(x) for x in (folder / "ecda/monitor/drift.jsonl").read_text().splitlines()]
    change = stream["change_window"]
    # Windows held while a new reference settles are not tests: no false alarm is possible there.
    held = [r["window"] for r in rows if r["decision"].get("held")]
    stable = [r for r in rows if r["window"] < change and not r["decision"].get("skipped")]
    flagged = [r["window"] for r in rows if r["window"] >= change and r["drift"]]
    store = AdapterStore(store_root)
    current = store.get(lang)
    model = base.with_adapter(current.path)
    updates = []
    for update in result.updates:
        metrics_file = folder / "ecda/updates" / update["id"] / "train/metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        train = {k: metrics.get(k, 0) for k in ("steps", "tokens")}
        updates.append({**update, "train": train, "after_change": max(update["windows"]) >= change})
    return {
        "system": system, "lang": lang, "seed": seed,
        "metrics": score(model, base.tokenizer, heldout(config, lang), config),
        "detection": {
            "change_window": change,
            "delay": flagged[0] - change if flagged else None,
            "false_alarms": sum(r["drift"] for r in stable),
            "stable_windows": len(stable),
            "held_windows": held,
            "settled": result.summary.get("settled_references", []),
        },
        "updates": updates,
        "current": current.name,
        # every update counts, a false alarm's too: that is what ECDA costs
        "train": {k: sum(u["train"][k] for u in updates) for k in ("steps", "tokens")},
    }  # fmt: skip


def run_baseline(ctx: StageContext, config: EcdaDriftConfig, base: LoadedBase, lang: str, seed: int,
                 system: str, ecda: dict[str, Any], out: Path) -> dict[str, Any]:  # fmt: skip
    """naive (from v1, the selection only, ECDA's steps) or full (fresh, D_tr + selection)."""
    from lingualift.adapters.store import AdapterStore
    from lingualift.workflows.training import TrainConfig, read_training_data, train_and_store

    update = next((u for u in ecda["updates"] if u["after_change"]), None)
    if update is None or not update["train"]["steps"]:  # ECDA saw no drift: nothing to train on
        return {"system": system, "lang": lang, "seed": seed, "skipped": "no drift detected",
                "train": {"steps": 0, "tokens": 0}}  # fmt: skip
    folder = out / "streams" / f"{lang}-s{seed}" / "ecda" / "updates" / update["id"]
    v1 = AdapterStore(out / "stores" / "base").get(lang, 1)
    full = system == "full"
    # naive trains as long as ECDA's update did, so only replay and the penalty differ;
    # full retraining passes over all of its data (train.epochs) unless full_steps says otherwise.
    steps = config.full_steps if full else update["train"]["steps"]
    train_config = TrainConfig(
        **base.settings.model_kwargs(), lang=lang,
        data=str(out / "data" / lang / "training.jsonl") if full else None, data_format="text", selection=str(folder / "select" / "selection.jsonl"), lora=config.lora,
        train=dataclasses.replace(config.train, seed=seed, max_steps=steps), packing=True,
        eval_fraction=0.0,
    )  # fmt: skip
    trained, _ = train_and_store(
        ctx, train_config, read_training_data(train_config), base.fresh(), base.tokenizer, None,
        None if full else v1,
    )  # fmt: skip
    return {
        "system": system, "lang": lang, "seed": seed,
        "metrics": score(trained.model, base.tokenizer, heldout(config, lang), config),
        "train": {k: trained.metrics[k] for k in ("steps", "tokens", "epochs")},
    }  # fmt: skip


def run_ecda_drift(config: EcdaDriftConfig, progress: bool = True) -> dict[str, Any]:
    from lingualift.data import write_records
    from lingualift.data.sources import read_source

    out = Path(config.run_dir)
    units = Units(out, config, progress)
    base = LoadedBase(config)
    results: list[dict[str, Any]] = []
    for lang in config.langs:
        pool = out / "data" / lang / "pool.jsonl"
        if not pool.is_file():
            spec = f"corpus:all-{lang}:{config.pool_books}:{config.pool_per_language}"
            # no translation of a held-out verse may be selected and trained on
            held = {e.id for examples in heldout(config, lang).values() for e in examples}
            records = read_source(spec, seed=config.data_seed, role="pool")
            records = [r for r in records if r.meta.get("verse") not in held]
            write_records(records + pool_target(config, lang), pool)
        v1 = units.run(
            f"v1__{lang}", lambda ctx, lang=lang: deploy_v1(ctx, config, base, lang, out)
        )
        results.append({**v1, "seed": None})
        for seed in config.seeds:
            ecda = units.run(
                f"ecda__{lang}__s{seed}",
                lambda ctx, lang=lang, seed=seed: run_stream(ctx, config, base, lang, seed, out),
            )
            results.append(ecda)
            for variant in config.variants:
                results.append(units.run(
                    f"{variant}__{lang}__s{seed}",
                    lambda ctx, lang=lang, seed=seed, variant=variant: run_stream(
                        ctx, config, base, lang, seed, out, variant),
                ))  # fmt: skip
            for system in ("naive", "full"):
                results.append(units.run(
                    f"{system}__{lang}__s{seed}",
                    lambda ctx, lang=lang, seed=seed, system=system, ecda=ecda: run_baseline(
                        ctx, config, base, lang, seed, system, ecda, out),
                ))  # fmt: skip
    summary = summarize_ecda(results)
    table = format_ecda(summary)
    plot = plot_ecda(summary, out / "results.png")
    path = write_results(out, config, {"summary": summary, "table": table, "units": results})
    return {"results": path, "plot": plot, "table": table}


def summarize_ecda(units: list[dict[str, Any]]) -> dict[str, Any]:
    """Per language: each system's NLLs and compute, paired differences, and per ECDA system its
    detection and the goals."""
    out: dict[str, Any] = {}
    for lang in dict.fromkeys(u["lang"] for u in units):
        mine = [u for u in units if u["lang"] == lang]
        none = next(u for u in mine if u["system"] == "none")
        seeds = sorted({u["seed"] for u in mine if u["seed"] is not None})
        present = [s for s in SYSTEMS if any(u["system"] == s for u in mine)]
        # a skipped system (no drift detected) keeps v1, and is scored as v1
        runs = {system: {seed: next(u for u in mine if u["system"] == system and u["seed"] == seed)
                         .get("metrics") or none["metrics"] for seed in seeds}
                for system in present if system != "none"}  # fmt: skip
        runs["none"] = {None: none["metrics"]}
        systems: dict[str, Any] = {}
        for system in present:
            group = [none] if system == "none" else [u for u in mine if u["system"] == system]
            scored = list(runs[system].values())
            systems[system] = {
                "new_nll": mean_std([m["new_nll"] for m in scored]),
                "old_nll": mean_std([m["old_nll"] for m in scored]),
                "steps": mean_std([u["train"]["steps"] for u in group]),
                "tokens": mean_std([u["train"]["tokens"] for u in group]),
            }
        ecda_systems = [s for s in ECDA_SYSTEMS if s in present]
        pairs = [(s, "none") for s in present if s != "none"]
        pairs += [(s, "full") for s in ecda_systems if "full" in present]
        pairs += [(s, "ecda") for s in ecda_systems if s != "ecda"]
        paired = {
            f"{a}-{b}": {
                role: paired_difference(
                    {k: m[f"{role}_per_text"] for k, m in runs[a].items()},
                    {k: m[f"{role}_per_text"] for k, m in runs[b].items()},
                )
                for role in ("new", "old")
            }
            for a, b in pairs
        }
        out[lang] = {
            "systems": systems,
            "paired": paired,
            "goals": {s: _goals(paired, systems, s) for s in ecda_systems},
            "detection": {
                s: _detection([u for u in mine if u["system"] == s]) for s in ecda_systems
            },
        }
    return out


def _detection(streams: list[dict[str, Any]]) -> dict[str, Any]:
    """Delay, misses, false alarms per 100 tested stable windows, held windows, promotions."""
    delays = [u["detection"]["delay"] for u in streams]
    stable = sum(u["detection"]["stable_windows"] for u in streams)
    alarms = sum(u["detection"]["false_alarms"] for u in streams)
    return {
        "delay": mean_std([d for d in delays if d is not None]),
        "missed": sum(d is None for d in delays),
        "false_alarms_per_100": 100.0 * alarms / stable if stable else None,
        "false_alarms": alarms,
        "stable_windows": stable,
        "held_windows": sum(len(u["detection"].get("held_windows", [])) for u in streams),
        "updates": sum(len(u["updates"]) for u in streams),
        "promoted": sum(any(x["status"] == "promoted" for x in u["updates"]) for u in streams),
        "seeds": len(streams),
    }


def _goals(paired: dict[str, Any], systems: dict[str, Any], system: str) -> dict[str, Any]:
    """The issue's goals for one ECDA system: >= 80% of full retraining's new-set gain, <= 30%
    of its compute, old set at most 2% worse than v1."""
    gain = -paired[f"{system}-none"]["new"]["difference"]
    full_gain = -paired["full-none"]["new"]["difference"] if "full-none" in paired else 0.0
    full_tokens = systems["full"]["tokens"]["mean"] if "full" in systems else None
    old_v1 = systems["none"]["old_nll"]["mean"]
    recovered = gain / full_gain if full_gain > 0 else None
    compute = systems[system]["tokens"]["mean"] / full_tokens if full_tokens else None
    old_change = paired[f"{system}-none"]["old"]["difference"] / old_v1
    return {
        "gain_recovered": recovered,
        "compute_share": compute,
        "old_relative_change": old_change,
        "met": {
            "gain_recovered >= 0.8": recovered is not None and recovered >= 0.8,
            "compute_share <= 0.3": compute is not None and compute <= 0.3,
            "old_relative_change <= 0.02": old_change <= 0.02,
        },
    }


def _cell(stat: dict[str, Any], digits: int = 3) -> str:
    if stat.get("mean") is None:
        return "–"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}" if stat["n"] > 1 else (
        f"{stat['mean']:.{digits}f}")  # fmt: skip


def _diff(stat: dict[str, Any] | None) -> str:
    if stat is None:
        return "–"
    low, high = stat["ci95"]
    return f"{stat['difference']:+.3f} [{low:+.3f}, {high:+.3f}]"


def _share(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.0%}"


def format_ecda(summary: dict[str, Any]) -> str:
    lines = [
        "| lang | system | new NLL ↓ | old NLL ↓ | Δ new vs v1 [95% CI] | Δ old vs v1 [95% CI] "
        "| steps | tokens |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for lang, info in summary.items():
        for system, stats in info["systems"].items():
            pair = info["paired"].get(f"{system}-none")
            lines.append(
                f"| {lang} | {system} | {_cell(stats['new_nll'])} | {_cell(stats['old_nll'])} | "
                f"{_diff(pair['new']) if pair else '–'} | {_diff(pair['old']) if pair else '–'} | "
                f"{_cell(stats['steps'], 0)} | {_cell(stats['tokens'], 0)} |"
            )
    lines += ["", "| lang | system | − full, new [95% CI] | − ecda, new [95% CI] | − ecda, old "
              "[95% CI] | gain recovered | compute share | old vs v1 | goals met |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for lang, info in summary.items():
        for system, goals in info["goals"].items():
            paired = info["paired"]
            vs_full = (paired.get(f"{system}-full") or {}).get("new")
            vs_ecda = paired.get(f"{system}-ecda") or {}
            met = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in goals["met"].items())
            lines.append(
                f"| {lang} | {system} | {_diff(vs_full)} | {_diff(vs_ecda.get('new'))} | "
                f"{_diff(vs_ecda.get('old'))} | {_share(goals['gain_recovered'])} | "
                f"{_share(goals['compute_share'])} | {goals['old_relative_change']:+.1%} | {met} |"
            )
    lines += ["", "| lang | system | detection delay (windows) | missed | false alarms / 100 "
              "tested stable windows | windows held (settling) | updates | promoted |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for lang, info in summary.items():
        for system, d in info["detection"].items():
            fa = "–" if d["false_alarms_per_100"] is None else f"{d['false_alarms_per_100']:.1f}"
            lines.append(
                f"| {lang} | {system} | {_cell(d['delay'], 2)} | {d['missed']}/{d['seeds']} | "
                f"{fa} ({d['false_alarms']} of {d['stable_windows']}) | {d['held_windows']} | "
                f"{d['updates']} | {d['promoted']}/{d['seeds']} |"
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
