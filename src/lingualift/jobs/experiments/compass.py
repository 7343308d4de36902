"""Experiment 1: COMPASS vs random vs lang-similarity vs all, at an equal budget and equal steps.

For each target language ``t`` the data are fixed samples of the embedded
corpus (drawn once with ``data_seed``, so embeddings are computed once and
cached): target usage (``usage_books``), the adapter's own data ``D_tr(t)``
(``training_books``) and a pool of every other corpus language
(``pool_books``, which leave out the held-out book). For each method and seed,
``lingualift.compass.run_select`` picks ``budget`` pool items (``all`` takes
the whole pool), a LoRA adapter is trained with ``lingualift.adapters`` on
``D_tr(t)`` + the selection for the same number of steps, and it is scored on
held-out target-language verses: NLL and the cloze set.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lingualift.jobs.experiments.config import CompassVsBaselinesConfig
from lingualift.jobs.experiments.summary import format_table, plot_bars, summarize, write_results
from lingualift.jobs.experiments.units import Units, evaluate, heldout_sets
from lingualift.stages import StageContext
from lingualift.workflows.base import LoadedBase


def write_inputs(config: CompassVsBaselinesConfig, lang: str, out: Path) -> dict[str, Path]:
    """Usage, D_tr(t) and pool as JSONL record files (written once, reused by every seed)."""
    from lingualift.data import write_records
    from lingualift.data.sources import read_source

    folder = out / "data" / lang
    specs = {
        "usage": f"corpus:{lang}:{config.usage_books}:{config.usage_per_language}",
        "training": f"corpus:{lang}:{config.training_books}:{config.training_per_language}",
        "pool": f"corpus:all-{lang}:{config.pool_books}:{config.pool_per_language}",
    }
    paths = {}
    for role, spec in specs.items():
        path = folder / f"{role}.jsonl"
        if not path.is_file():
            write_records(read_source(spec, seed=config.data_seed, role=role), path)
        paths[role] = path
    return paths


def select(
    config: CompassVsBaselinesConfig,
    lang: str,
    method: str,
    seed: int,
    inputs: dict[str, Path],
    out: Path,
) -> Path:
    """A selection folder (kept, with its report and cluster profile, for inspection)."""
    from lingualift.data.sources import read_source
    from lingualift.workflows.selection import select_stage

    folder = out / "selections" / f"{method}-{lang}-s{seed}"
    select_stage(
        folder,
        method,
        read_source(str(inputs["usage"]), seed=seed, role="target"),
        read_source(str(inputs["training"]), seed=seed, role="training"),
        read_source(str(inputs["pool"]), seed=seed, role="pool"),
        None if method == "all" else config.budget,
        fmt="jsonl",
        encoder=config.encoder,
        seed=seed,
        target_lang=lang,
    )
    return folder


def train_adapter(
    ctx: StageContext,
    config: CompassVsBaselinesConfig,
    base: LoadedBase,
    lang: str,
    seed: int,
    data: Path,
    selection: Path,
):
    """LoRA on D_tr(t) + selection with the train job's stage body; returns (model, metrics)."""
    from lingualift.workflows.training import TrainConfig, read_training_data, train_and_store

    train_config = TrainConfig(
        lang=lang,
        **base.settings.model_kwargs(),
        data=str(data),
        data_format="text",
        selection=str(selection),
        lora=config.lora,
        train=dataclasses.replace(config.train, seed=seed),
        packing=True,
        eval_fraction=0.0,
    )
    trained, _ = train_and_store(
        ctx, train_config, read_training_data(train_config), base.fresh(), base.tokenizer, None
    )
    keep = ("steps", "epochs", "train_rows", "train_loss_first", "train_loss_last", "tokens")
    return trained.model, {k: trained.metrics[k] for k in (*keep, "train_seconds")}


def run_compass_vs_baselines(
    config: CompassVsBaselinesConfig, progress: bool = True
) -> dict[str, Any]:
    out = Path(config.run_dir)
    units = Units(out, config, progress)
    base = LoadedBase(config)
    sets = heldout_sets(config, config.langs, english=False)
    results = [
        units.run(
            "base",
            lambda ctx: {
                "system": "base",
                "seed": None,
                "metrics": evaluate(base.model, base.tokenizer, sets, config),
            },
        )
    ]
    for lang in config.langs:
        inputs = write_inputs(config, lang, out)
        lang_sets = sets.only(lang)
        for seed in config.seeds:
            for method in config.methods:

                def compute(
                    ctx, method=method, seed=seed, lang=lang, inputs=inputs, lang_sets=lang_sets
                ):
                    import json

                    folder = select(config, lang, method, seed, inputs, out)
                    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
                    model, train = train_adapter(
                        ctx,
                        config,
                        base,
                        lang,
                        seed,
                        inputs["training"],
                        folder / "selection.jsonl",
                    )
                    return {
                        "system": method,
                        "seed": seed,
                        "lang": lang,
                        "metrics": evaluate(model, base.tokenizer, lang_sets, config),
                        "selection": {
                            k: report.get(k)
                            for k in ("n_selected", "n_pool", "js_before", "js_after", "languages")
                        },
                        "train": train,
                    }

                results.append(units.run(f"{method}__{lang}__s{seed}", compute))
    systems = ["base", *config.methods]
    summary = summarize(results)
    table = format_table(summary, systems)
    js = _js_summary(results)
    args = config.train
    title = (
        f"COMPASS vs baselines: LoRA on D_tr + selection (budget {config.budget}, "
        f"{args.max_steps} steps x {args.batch_size}x{args.max_length}), "
        f"{len(config.seeds)} seeds (error bars: std)"
    )
    plot = plot_bars(summary, systems, out / "results.png", title)
    path = write_results(
        out, config, {"summary": summary, "js": js, "table": table, "units": results}
    )
    return {"results": path, "plot": plot, "table": table + "\n\n" + _js_table(js)}


def _js_summary(units: list[dict[str, Any]]) -> dict[str, Any]:
    """JS(target || training (+ selection)) per method and language, mean ± std over seeds.

    "before" (training data alone) also varies with the seed, which redraws the clusters.
    """
    from lingualift.jobs.experiments.summary import mean_std

    values: dict[tuple[str, str], list[float]] = {}
    before: dict[str, dict[int, float]] = {}
    for unit in units:
        sel = unit.get("selection")
        if not sel or sel.get("js_after") is None:
            continue
        values.setdefault((unit["system"], unit["lang"]), []).append(sel["js_after"])
        before.setdefault(unit["lang"], {})[unit["seed"]] = sel["js_before"]
    return {
        "before": {lang: mean_std(list(seeds.values())) for lang, seeds in before.items()},
        "after": {f"{m}/{lang}": mean_std(v) for (m, lang), v in values.items()},
    }


def _js_table(js: dict[str, Any]) -> str:
    lines = ["| method/lang | JS(target ‖ training + selection), bits |", "| --- | ---: |"]
    rows = [(f"before (D_tr only)/{lang}", stat) for lang, stat in js["before"].items()]
    for key, stat in [*rows, *js["after"].items()]:
        lines.append(f"| {key} | {stat['mean']:.3f} ± {stat['std']:.3f} |")
    return "\n".join(lines)
