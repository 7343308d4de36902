"""Experiments 2 and 3: ShifCon vs plain LoRA, and the layer area against a sweep of bands.

Both train with :class:`lingualift.shifcon.trainer.ShifConTrainer` on the same
parallel pairs (English + each language), batches, seed, LoRA rank, learning
rate and step count. Plain LoRA is the trainer with ``shift=false, beta=0,
alpha=1``; ShifCon uses the published ``alpha=0.5, beta=2`` and is scored with
its shift on (how it is deployed). Language vectors and the chosen band are
computed once per experiment (or read from ``config.shifcon``) and reused by
every seed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lingualift.jobs.experiments.config import LayerAreaConfig, ShifConSetup, ShifConVsLoraConfig
from lingualift.jobs.experiments.summary import format_table, plot_bars, summarize, write_results
from lingualift.jobs.experiments.units import Units, evaluate, heldout_sets
from lingualift.stages import StageContext
from lingualift.workflows.base import LoadedBase

ShifConExperiment = ShifConVsLoraConfig | LayerAreaConfig
"""The experiments that train ShifCon on parallel pairs."""


def language_area(config: ShifConExperiment, base: LoadedBase, out: Path):
    """The ShifCon object (vectors + curve-chosen band): read from config.shifcon or out/shifcon."""
    from lingualift.errors import LingualiftError
    from lingualift.shifcon import ShifCon
    from lingualift.shifcon.corpus import corpus_texts

    folder = Path(config.shifcon) if config.shifcon else out / "shifcon"
    if (folder / "shifcon.json").is_file():
        shifcon = ShifCon.load(folder)
        missing = [lang for lang in config.langs if lang not in shifcon.languages]
        if not missing:
            shifcon.vectors.check_model(base.model)
            return shifcon
        if config.shifcon:
            raise LingualiftError(
                f"{folder} has no vectors for {', '.join(missing)}; compute them or drop shifcon=."
            )
    print(f"[experiment] language vectors for {['en', *config.langs]} -> {folder}", flush=True)
    return ShifCon.build(
        base.model,
        base.tokenizer,
        corpus_texts(config.langs, config.vector_books, config.vector_per_language),
        folder,
        base_spec=base.spec,
        batch_size=config.eval_batch_size,
        max_length=config.train.max_length,
        source=f"embedded corpus books={config.vector_books} first {config.vector_per_language}",
    )


def objective_of(config: ShifConSetup, system: str):
    """The loss a system trains with: plain LoRA, ShifCon, or one of ``SHIFCON_ABLATIONS``."""
    from lingualift.shifcon.loss import ShifConObjective

    shift, alpha, beta = {
        "lora": (False, 1.0, 0.0),
        "shifcon": (True, config.alpha, config.beta),
        "shift-trained": (True, 1.0, 0.0),
        "contrastive-only": (False, config.alpha, config.beta),
        "fixed-anchors": (True, config.alpha, config.beta),
    }[system]
    return ShifConObjective(
        alpha=alpha, beta=beta, tau=config.tau, shift=shift,
        train_anchors=system != "fixed-anchors",
    )  # fmt: skip


def _train(
    ctx: StageContext,
    config: ShifConExperiment,
    base: LoadedBase,
    shifcon: Any,
    pairs: list[Any],
    seed: int,
    system: str,
    lr: float | None = None,
) -> tuple[Any, dict[str, Any]]:
    from lingualift.shifcon.trainer import ShifConTrainer

    objective = objective_of(config, system)
    trainer = ShifConTrainer(
        base.fresh(),
        base.tokenizer,
        shifcon,
        pairs,
        dataclasses.replace(config.train, seed=seed, lr=lr or config.train.lr),
        objective=objective,
        lora=config.lora,
        run_dir=ctx.work,
    )
    metrics = trainer.train(progress=True)
    metrics["loss_log"] = [
        {k: e[k] for k in ("step", "lang", "loss", "gen", "con")} for e in trainer.log
    ]
    return trainer.model, metrics


def _score(
    config: ShifConExperiment, system: str, model: Any, tokenizer: Any, sets: Any, shifcon: Any
):
    """Held-out scores of a trained system, with the shift on where it trained with it."""
    shift = objective_of(config, system).shift
    return evaluate(model, tokenizer, sets, config, shifcon if shift else None)


def _pairs(config: ShifConExperiment) -> list[Any]:
    from lingualift.shifcon.corpus import corpus_pairs

    return corpus_pairs(config.langs, config.train_books, config.pairs_per_language)


def _unit(system: str, seed: int | None, metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"system": system, "seed": seed, "metrics": metrics, **extra}


def _validation(config: ShifConVsLoraConfig) -> dict[str, list[str]]:
    """Target-language verses of the training books that come after the training pairs."""
    from lingualift.data import ParallelCorpus

    corpus = ParallelCorpus()
    start, n = config.pairs_per_language, config.validation_per_language
    return {
        lang: [
            t.text for _, t in corpus.parallel("en", lang, config.train_books)[start : start + n]
        ]
        for lang in config.langs
    }


def choose_learning_rates(
    config: ShifConVsLoraConfig, units: Units, base: LoadedBase, shifcon: Any, pairs: list[Any]
) -> dict[str, Any]:
    """Each system's learning rate: the lowest validation NLL over ``lr_grid`` at seed 0."""
    from lingualift.evaluation.heldout import HeldoutSet

    if not config.lr_grid:
        return {"lora": config.train.lr, "shifcon": config.train.lr, "sweep": {}}
    validation = HeldoutSet(_validation(config))
    sweep: dict[str, dict[str, float]] = {}
    chosen: dict[str, Any] = {}
    for system in ("lora", "shifcon"):
        for lr in config.lr_grid:

            def tune(ctx, system=system, lr=lr):
                model, _ = _train(ctx, config, base, shifcon, pairs, 0, system, lr)
                scores = _score(config, system, model, base.tokenizer, validation, shifcon)
                return {"nll": sum(v["nll"] for v in scores.values()) / len(scores)}

            sweep.setdefault(system, {})[f"{lr:g}"] = units.run(f"lr__{system}__{lr:g}", tune)[
                "nll"
            ]
        chosen[system] = min(config.lr_grid, key=lambda lr: sweep[system][f"{lr:g}"])
    return {**chosen, "sweep": sweep}


def run_shifcon_vs_lora(config: ShifConVsLoraConfig, progress: bool = True) -> dict[str, Any]:
    """ShifCon vs plain LoRA (+ base, base with the shift) over the seeds, paired per item.

    ``config.ablations`` adds variants of ShifCon (``SHIFCON_ABLATIONS``), trained at
    ShifCon's learning rate: which part makes ShifCon differ from LoRA.
    """
    out = Path(config.run_dir)
    units = Units(out, config, progress)
    base = LoadedBase(config)
    shifcon = language_area(config, base, out)
    sets = heldout_sets(config, config.langs, english=config.english)
    pairs = _pairs(config)
    rates = choose_learning_rates(config, units, base, shifcon, pairs)
    results = [
        units.run(
            "base",
            lambda ctx: _unit("base", None, evaluate(base.model, base.tokenizer, sets, config)),
        ),
        units.run(
            "base+shift",
            lambda ctx: _unit(
                "base + shift (no training)",
                None,
                evaluate(base.model, base.tokenizer, sets, config, shifcon),
            ),
        ),
    ]
    trained = ["lora", "shifcon", *config.ablations]
    for seed in config.seeds:
        for system in trained:
            lr = rates.get(system, rates["shifcon"])

            def compute(ctx, system=system, seed=seed, lr=lr):
                model, train = _train(ctx, config, base, shifcon, pairs, seed, system, lr)
                metrics = _score(config, system, model, base.tokenizer, sets, shifcon)
                return _unit(system, seed, metrics, train=train)

            # Without a sweep the rate is train.lr, already in the fingerprint: old units stay.
            extra = {"lr": lr} if config.lr_grid else {}
            results.append(units.run(f"{system}__s{seed}", compute, **extra))
    systems = ["base", "base + shift (no training)", *trained]
    summary = summarize(results)
    table = format_table(summary, systems)
    paired = paired_comparisons(results, config.langs, config.ablations)
    args = config.train
    title = (
        f"ShifCon vs LoRA, {args.max_steps} steps x {args.batch_size} pairs, area "
        f"[{shifcon.a}, {shifcon.b}], {len(config.seeds)} seeds (error bars: std)"
    )
    plot = plot_bars(summary, systems, out / "results.png", title)
    curve = plot_contrastive_curve(results, out / "contrastive.png", config.train.batch_size)
    path = write_results(
        out,
        config,
        {
            "area": [shifcon.a, shifcon.b],
            "learning_rates": rates,
            "summary": summary,
            "paired": paired,
            "table": table,
            "units": results,
        },
    )
    return {
        "results": path,
        "plot": plot,
        "table": table + "\n\n" + paired_table(paired, rates),
        "curve": curve,
    }


def paired_comparisons(
    results: list[dict[str, Any]], langs: list[str], ablations: Sequence[str] = ()
) -> dict[str, Any]:
    """Per language: ShifCon vs LoRA and each vs base on held-out NLL, the shift alone vs base
    on NLL and cloze, each ablation vs LoRA; paired differences with 95% bootstrap intervals."""
    from lingualift.jobs.experiments.stats import paired_difference

    def runs(system: str, lang: str, key: str) -> dict[Any, Any]:
        out = {}
        for unit in results:
            metrics = unit["metrics"].get(lang, {})
            if unit["system"] == system and key in metrics:
                values = metrics[key]
                out[unit["seed"]] = values if key == "per_text" else [[h, 1] for h in values]
        return out

    comparisons = {
        "shifcon - lora": ("shifcon", "lora"),
        "shifcon - base": ("shifcon", "base"),
        "lora - base": ("lora", "base"),
        "shift only - base": ("base + shift (no training)", "base"),
        **{f"{name} - lora": (name, "lora") for name in ablations},
    }
    paired: dict[str, Any] = {}
    for lang in [*langs, "en"]:
        for name, (a, b) in comparisons.items():
            for key, label in (("per_text", "nll"), ("cloze_hits", "cloze")):
                first, second = runs(a, lang, key), runs(b, lang, key)
                if first and second:
                    paired[f"{lang}/{label}/{name}"] = paired_difference(first, second)
    return paired


def paired_table(paired: dict[str, Any], rates: dict[str, Any]) -> str:
    lines = [
        f"learning rates: lora {rates['lora']:g}, shifcon {rates['shifcon']:g} "
        f"(validation sweep: {rates.get('sweep') or 'none'})",
        "",
        "| lang / metric / comparison | difference [95% CI] | verdict |",
        "| --- | ---: | --- |",
    ]
    for key, d in paired.items():
        lo, hi = d["ci95"]
        lines.append(f"| {key} | {d['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}] | {d['verdict']} |")
    return "\n".join(lines)


def plot_contrastive_curve(
    results: list[dict[str, Any]], path: Path, batch_size: int
) -> Path | None:
    """The contrastive (and generation) loss of each ShifCon run against the step, with the
    contrastive loss of a model that cannot tell the batch's pairs apart (ln batch_size)."""
    from lingualift.plotting import pyplot, save_figure

    runs = [u for u in results if u["system"] == "shifcon" and u.get("train", {}).get("loss_log")]
    if not runs:
        return None
    plt = pyplot()
    fig, (con_ax, gen_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for unit in runs:
        log = unit["train"]["loss_log"]
        steps = [e["step"] for e in log]
        con_ax.plot(steps, [e["con"] for e in log], lw=1, label=f"seed {unit['seed']}")
        gen_ax.plot(steps, [e["gen"] for e in log], lw=1, label=f"seed {unit['seed']}")
    con_ax.set_title("contrastive loss (InfoNCE over the area)", fontsize=9)
    gen_ax.set_title("generation loss (shifted forward)", fontsize=9)
    con_ax.axhline(math.log(batch_size), color="grey", ls="--", lw=0.8, label="chance")
    for ax in (con_ax, gen_ax):
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def run_layer_area(config: LayerAreaConfig, progress: bool = True) -> dict[str, Any]:
    """The curve-chosen band vs a sweep of bands: ShifCon trained per band and seed."""
    from lingualift.shifcon import ShifCon

    out = Path(config.run_dir)
    units = Units(out, config, progress)
    base = LoadedBase(config)
    chosen = language_area(config, base, out)
    sets = heldout_sets(config, config.langs, english=False)
    pairs = _pairs(config)
    bands = [(chosen.a, chosen.b)] + [
        (int(a), int(b)) for a, b in config.bands if (int(a), int(b)) != (chosen.a, chosen.b)
    ]
    bands.sort()
    results = [
        units.run(
            "base",
            lambda ctx: _unit("base", None, evaluate(base.model, base.tokenizer, sets, config)),
        )
    ]
    shifcons = {band: ShifCon(chosen.vectors, *band) for band in bands}
    if config.shift_only:
        for band, sc in shifcons.items():
            results.append(
                units.run(
                    f"shift-only__{band[0]}-{band[1]}",
                    lambda ctx, sc=sc, band=band: _unit(
                        f"shift only [{band[0]},{band[1]}]",
                        None,
                        evaluate(base.model, base.tokenizer, sets, config, sc),
                        band=list(band),
                    ),
                )
            )
    for seed in config.seeds:
        for band, sc in shifcons.items():

            def compute(ctx, band=band, sc=sc, seed=seed):
                model, train = _train(ctx, config, base, sc, pairs, seed, "shifcon")
                metrics = evaluate(model, base.tokenizer, sets, config, sc)
                return _unit(f"[{band[0]},{band[1]}]", seed, metrics, band=list(band), train=train)

            results.append(units.run(f"shifcon__{band[0]}-{band[1]}__s{seed}", compute))
    summary = summarize(results)
    label = {band: f"[{band[0]},{band[1]}]" for band in bands}
    systems = ["base"] + [label[b] for b in bands] + [f"shift only {label[b]}" for b in bands]
    table = format_table(summary, [s for s in systems if s in summary])
    curve = chosen.curve["curves"]["mean"] if chosen.curve else None
    band_distance = (
        {label[b]: sum(curve[b[0] : b[1] + 1]) / (b[1] - b[0] + 1) for b in bands} if curve else {}
    )
    plot = plot_layer_area(summary, bands, (chosen.a, chosen.b), curve, out / "results.png", config)
    path = write_results(
        out,
        config,
        {
            "chosen": [chosen.a, chosen.b],
            "bands": [list(b) for b in bands],
            "band_mean_distance": band_distance,
            "curve": curve,
            "summary": summary,
            "table": table,
            "units": results,
        },
    )
    return {"results": path, "plot": plot, "table": table}


def plot_layer_area(summary, bands, chosen, curve, path: Path, config: LayerAreaConfig) -> Path:
    """Metric against the band (x = a), trained ShifCon ± std per language, the chosen band marked."""
    from lingualift.plotting import pyplot, save_figure

    plt = pyplot()
    metrics = [("nll", "held-out NLL (nats/token) ↓"), ("cloze_acc_norm", "cloze acc_norm ↑")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    xs = [b[0] for b in bands]
    for ax, (metric, ylabel) in zip(axes, metrics, strict=True):
        for lang in config.langs:
            for prefix, style in (("", "o-"), ("shift only ", "s--")):
                ys, errs, xs_used = [], [], []
                for band, x in zip(bands, xs, strict=True):
                    stat = (
                        summary.get(f"{prefix}[{band[0]},{band[1]}]", {}).get(lang, {}).get(metric)
                    )
                    if stat and stat.get("mean") is not None:
                        xs_used.append(x)
                        ys.append(stat["mean"])
                        errs.append(stat["std"])
                if xs_used:
                    name = "ShifCon trained" if not prefix else "shift only"
                    ax.errorbar(
                        xs_used, ys, yerr=errs, fmt=style, capsize=3, label=f"{lang}: {name}"
                    )
            stat = summary.get("base", {}).get(lang, {}).get(metric)
            if stat and stat.get("mean") is not None:
                ax.axhline(stat["mean"], lw=0.8, ls=":", color="grey")
        ax.axvspan(chosen[0] - 0.3, chosen[0] + 0.3, color="gold", alpha=0.3, label="curve's band")
        ax.set_xticks(xs, [f"[{a},{b}]" for a, b in bands])
        ax.set_xlabel("layer area [a, b]")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if curve:
        twin = axes[0].twinx()
        twin.plot(range(len(curve)), curve, color="black", lw=0.8, alpha=0.4)
        twin.set_ylabel("mean subspace distance to en (thin line)", fontsize=7)
    axes[1].legend(fontsize=6)
    fig.suptitle(
        f"Layer area: curve's band {list(chosen)} vs sweep ({config.train.max_steps} steps, "
        f"{len(config.seeds)} seeds; dotted: base model)",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path)
