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

import json
from pathlib import Path
from typing import Any

from lingualift.experiments.common import (
    BaseModel,
    UnitStore,
    evaluate,
    format_table,
    heldout_sets,
    plot_bars,
    summarize,
    write_results,
)


def write_inputs(config: Any, lang: str, out: Path) -> dict[str, Path]:
    """Usage, D_tr(t) and pool as JSONL record files (written once, reused by every seed)."""
    from lingualift.compass.pipeline import SelectConfig, load_source
    from lingualift.data import write_records

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
            records = load_source(spec, SelectConfig(seed=config.data_seed), role)
            write_records(records, path)
        paths[role] = path
    return paths


def select(
    config: Any, lang: str, method: str, seed: int, inputs: dict[str, Path], out: Path
) -> Path:
    """A selection folder from ``run_select`` (kept, with its report, for inspection)."""
    from lingualift.compass.pipeline import SelectConfig, run_select

    folder = out / "selections" / f"{method}-{lang}-s{seed}"
    if (folder / "selection.jsonl").is_file():
        return folder
    run_select(
        SelectConfig(
            target=str(inputs["usage"]),
            training=str(inputs["training"]),
            pool=str(inputs["pool"]),
            target_lang=lang,
            method=method,
            budget=None if method == "all" else config.budget,
            encoder=config.encoder,
            seed=seed,
            out_dir=str(folder),
            format="jsonl",
            overwrite=True,
        )
    )
    return folder


def train_adapter(
    config: Any, base: BaseModel, lang: str, seed: int, data: Path, selection: Path, out: Path
):
    """LoRA on D_tr(t) + selection with the adapters trainer; returns (model, metrics)."""
    from lingualift.adapters import LoraSettings, TrainConfig
    from lingualift.adapters.trainer import LoraTrainer, read_training_data

    train_config = TrainConfig(
        lang=lang,
        model=base.spec,
        data=str(data),
        data_format="text",
        selection=str(selection),
        lora=LoraSettings(r=config.lora_r, alpha=2.0 * config.lora_r),
        lr=config.lr,
        warmup_steps=max(1, config.steps // 10),
        max_steps=config.steps,
        batch_size=config.batch_size,
        max_length=config.max_length,
        packing=True,
        eval_fraction=0.0,
        seed=seed,
        output_dir=str(out),
        store=str(out / "store"),
    )
    trainer = LoraTrainer(train_config, model=base.fresh(), tokenizer=base.tokenizer)
    trainer.load_data(read_training_data(train_config))
    result = trainer.fit()
    keep = ("steps", "train_rows", "train_loss_first", "train_loss_last", "tokens", "train_seconds")
    return trainer.model, {k: result.metrics[k] for k in keep}


def run_compass_vs_baselines(config: Any, progress: bool = True) -> dict[str, Any]:
    out = Path(config.run_dir)
    store = UnitStore(out, config)
    base = BaseModel(config.model)
    sets = heldout_sets(config, config.langs, english=False)
    units = [
        store.run(
            "base",
            lambda: {
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
                    method=method, seed=seed, lang=lang, inputs=inputs, lang_sets=lang_sets
                ):
                    folder = select(config, lang, method, seed, inputs, out)
                    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
                    model, train = train_adapter(
                        config,
                        base,
                        lang,
                        seed,
                        inputs["training"],
                        folder / "selection.jsonl",
                        out / "train" / f"{method}-{lang}-s{seed}",
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

                units.append(store.run(f"{method}__{lang}__s{seed}", compute))
    systems = ["base", *config.methods]
    summary = summarize(units)
    table = format_table(summary, systems)
    js = _js_summary(units)
    title = (
        f"COMPASS vs baselines: LoRA on D_tr + selection (budget {config.budget}, "
        f"{config.steps} steps x {config.batch_size}x{config.max_length}), "
        f"{len(config.seeds)} seeds (error bars: std)"
    )
    plot = plot_bars(summary, systems, out / "results.png", title)
    path = write_results(
        out, config, {"summary": summary, "js": js, "table": table, "units": units}
    )
    return {"results": path, "plot": plot, "table": table + "\n\n" + _js_table(js)}


def _js_summary(units: list[dict[str, Any]]) -> dict[str, Any]:
    """JS(target || training (+ selection)) per method and language, mean ± std over seeds.

    "before" (training data alone) also varies with the seed, which redraws the clusters.
    """
    from lingualift.experiments.common import mean_std

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
