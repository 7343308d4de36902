"""Experiment ``compass_genres``: COMPASS where a real semantic gap exists, and where none does.

The embedded corpus's books fall into genres (``lingualift.data.corpus.GENRES``).
For each target language ``t`` and condition:

- **gap**: target usage and held-out text come from one genre (letters, from
  disjoint books), ``D_tr(t)`` from another (narrative); the pool holds every
  genre, equally, in the other corpus languages;
- **control**: target usage comes from ``D_tr``'s own genre (narrative books
  that ``D_tr`` does not use), held out in yet other narrative books: there is
  no gap to fill, and COMPASS should not beat random;
- **realistic**: the gap condition with a pool that also holds target-language
  text of the other genres (what a real auxiliary pool looks like).

Every method (and an ``oracle`` that adds target-language text of the usage
genre instead of a selection, the ceiling a selection can reach) trains a LoRA
adapter on ``D_tr(t)`` + its data for the **same number of steps** in every
condition, enough for ``epochs_of_largest`` passes over the largest training set
('all': ``D_tr`` + the whole other-language pool). The learning rate is chosen once, on a
validation split of the usage genre (never the held-out books), from
``lr_grid``. Every system is scored per held-out verse, so differences are
paired (:mod:`lingualift.jobs.experiments.stats`): each against random, with a
95% bootstrap interval over held-out items and seeds; selection precision (the
share of the selection drawn from the usage genre) is reported beside it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lingualift.data import CORPUS_LANGUAGES, ParallelCorpus, Record, parse_books, write_records
from lingualift.data.corpus import GENRE_OF_BOOK, GENRES
from lingualift.jobs.experiments.config import CompassGenresConfig, GenreSettings
from lingualift.jobs.experiments.stats import (
    difference_in_differences,
    items_needed,
    mean_nll,
    paired_difference,
    score_texts,
)
from lingualift.jobs.experiments.summary import write_results
from lingualift.jobs.experiments.units import Units
from lingualift.stages import StageContext
from lingualift.workflows.base import LoadedBase
from lingualift.workflows.selection import select_into


@dataclasses.dataclass
class Condition:
    """The books of one condition."""

    name: str
    usage_books: str
    heldout_books: str
    realistic: bool = False

    def usage_genre(self) -> str:
        return GENRE_OF_BOOK[parse_books(self.usage_books)[0]]


def conditions(settings: GenreSettings) -> dict[str, Condition]:
    gap = Condition("gap", settings.gap_usage_books, settings.gap_heldout_books)
    return {
        "gap": gap,
        "control": Condition(
            "control", settings.control_usage_books, settings.control_heldout_books
        ),
        "realistic": dataclasses.replace(gap, name="realistic", realistic=True),
    }


# -- data -----------------------------------------------------------------------------------


def _sample(records: list[Record], n: int, rng: np.random.Generator) -> list[Record]:
    if n >= len(records):
        return list(records)
    return [records[i] for i in np.sort(rng.choice(len(records), n, replace=False))]


def draw_inputs(
    config: CompassGenresConfig, cond: Condition, lang: str, folder: Path
) -> dict[str, Any]:
    """Training, usage, validation, held-out, pool and oracle verses as JSONL files."""
    settings = config.genres
    corpus = ParallelCorpus()
    rng = np.random.default_rng(config.data_seed)
    held_out = set(parse_books(settings.gap_heldout_books)) | set(
        parse_books(settings.control_heldout_books)
    )
    training = _sample(
        corpus.multilingual([lang], settings.training_books), settings.n_training, rng
    )
    usage_pool = corpus.multilingual([lang], cond.usage_books)
    order = rng.permutation(len(usage_pool))
    n_u, n_v = settings.n_usage, settings.n_validation
    usage = sorted((usage_pool[i] for i in order[:n_u]), key=lambda r: r.id)
    validation = sorted((usage_pool[i] for i in order[n_u : n_u + n_v]), key=lambda r: r.id)
    oracle = sorted(
        (usage_pool[i] for i in order[n_u + n_v : n_u + n_v + settings.budget]), key=lambda r: r.id
    )
    heldout = _sample(corpus.multilingual([lang], cond.heldout_books), settings.n_heldout, rng)
    others = [code for code in CORPUS_LANGUAGES if code != lang]
    pool: list[Record] = []
    for books in GENRES.values():
        kept = [b for b in books if b not in held_out]
        if kept:  # genre-balanced: the same number of verses of every genre, any language
            pool += _sample(corpus.multilingual(others, kept), settings.pool_per_genre, rng)
    pool_base = len(pool)
    if cond.realistic:  # target-language text of the genres that are neither usage nor D_tr's
        skip = {cond.usage_genre(), GENRE_OF_BOOK[parse_books(settings.training_books)[0]]}
        for genre, books in GENRES.items():
            kept = [b for b in books if b not in held_out]
            if genre not in skip and kept:
                pool += _sample(
                    corpus.multilingual([lang], kept), settings.realistic_per_genre, rng
                )
    files = {
        "training": training, "usage": usage, "validation": validation, "heldout": heldout,
        "pool": pool, "oracle": oracle,
    }  # fmt: skip
    for role, records in files.items():
        write_records(records, folder / f"{role}.jsonl")
    return {**{role: len(records) for role, records in files.items()}, "pool_base": pool_base}


def _read(folder: Path, role: str) -> list[Record]:
    from lingualift.data import read_records

    return read_records(folder / f"{role}.jsonl")


def _packed_rows(tokenizer: Any, records: list[Record], max_length: int) -> int:
    tokens = sum(len(tokenizer(r.text)["input_ids"]) + 1 for r in records)  # + EOS
    return math.ceil(tokens / max_length)


# -- units ----------------------------------------------------------------------------------


def _genre_share(records: list[Record], genre: str) -> float:
    books = [int(str(r.meta.get("book") or r.id.split(":")[-1].split(".")[0])) for r in records]
    return sum(GENRE_OF_BOOK[b] == genre for b in books) / max(len(books), 1)


def _score(
    model: Any, tokenizer: Any, texts: list[str], config: CompassGenresConfig
) -> dict[str, Any]:
    return score_texts(model, tokenizer, texts, config.eval_max_length, config.eval_batch_size)


def _train_and_score(
    ctx: StageContext,
    config: CompassGenresConfig,
    base: LoadedBase,
    lang: str,
    data_dir: Path,
    extra: Path | None,
    seed: int,
    lr: float,
    steps: int,
    texts: list[str],
) -> dict[str, Any]:
    """LoRA on D_tr(t) + ``extra`` (a selection or the oracle's verses); held-out NLL per verse."""
    from lingualift.workflows.training import TrainConfig, read_training_data, train_and_store

    train_config = TrainConfig(
        lang=lang,
        **base.settings.model_kwargs(),
        data=str(data_dir / "training.jsonl"),
        data_format="text",
        selection=str(extra) if extra else None,
        lora=config.lora,
        train=dataclasses.replace(config.train, seed=seed, lr=lr, max_steps=steps),
        packing=True,
        eval_fraction=0.0,
    )
    trained, _ = train_and_store(
        ctx, train_config, read_training_data(train_config), base.fresh(), base.tokenizer, None,
        progress=False,
    )  # fmt: skip
    keep = ("steps", "epochs", "train_rows", "tokens", "train_loss_first", "train_loss_last")
    return {
        **_score(trained.model, base.tokenizer, texts, config),
        "train": {k: trained.metrics[k] for k in (*keep, "train_seconds")},
    }


def run_compass_genres(config: CompassGenresConfig, progress: bool = True) -> dict[str, Any]:
    settings = config.genres
    out = Path(config.run_dir)
    units = Units(out, config, progress)
    base = LoadedBase(config)
    conds = conditions(settings)
    folders: dict[tuple[str, str], Path] = {}
    steps: dict[str, int] = {}
    for name in settings.conditions:
        cond = conds[name]
        largest = 0
        for lang in config.langs:
            unit = f"data__{name}__{lang}"
            result = units.run(
                unit, lambda ctx, c=cond, lang=lang: draw_inputs(config, c, lang, ctx.out)
            )
            folders[name, lang] = folder = units.path(unit)
            # The same steps in every condition: one epoch of D_tr + the other-language pool
            # (what 'all' trains on in the gap; the realistic pool's extra verses not counted).
            records = _read(folder, "training") + _read(folder, "pool")[: result["pool_base"]]
            largest = max(largest, _packed_rows(base.tokenizer, records, config.train.max_length))
        per_step = config.train.batch_size * config.train.grad_accum
        steps[name] = config.train.max_steps or math.ceil(
            settings.epochs_of_largest * largest / per_step
        )

    # The learning rate, chosen once on the validation split of the first language's gap data.
    first = (settings.conditions[0], config.langs[0])
    validation = [r.text for r in _read(folders[first], "validation")]
    sweep = {}
    for lr in settings.lr_grid:

        def tune(ctx, lr=lr):
            folder = folders[first]
            select_into(
                ctx.out, "random", _read(folder, "usage"), _read(folder, "training"),
                _read(folder, "pool"), settings.budget, fmt="jsonl", encoder=config.encoder, seed=0,
            )  # fmt: skip
            return _train_and_score(
                ctx, config, base, first[1], folder, ctx.out / "selection.jsonl", 0, lr,
                steps[first[0]], validation,
            )  # fmt: skip

        sweep[lr] = units.run(f"lr__{lr:g}", tune, steps=steps[first[0]])
    lr = min(sweep, key=lambda value: sweep[value]["nll"])

    results: list[dict[str, Any]] = []
    for name in settings.conditions:
        cond = conds[name]
        for lang in config.langs:
            folder = folders[name, lang]
            texts = [r.text for r in _read(folder, "heldout")]
            results.append(
                units.run(
                    f"base__{name}__{lang}",
                    lambda ctx, texts=texts: _score(base.model, base.tokenizer, texts, config),
                )
                | {"system": "base", "condition": name, "lang": lang, "seed": None}
            )
            methods = settings.methods if name == "gap" else settings.side_methods
            # The realistic pool changes nothing for the oracle, which uses no pool: its gap run is it.
            oracle = settings.oracle and name != "realistic"
            systems = [*methods, *(["oracle"] if oracle else [])]
            for seed in config.seeds:
                for system in systems:

                    def compute(
                        ctx,
                        system=system,
                        seed=seed,
                        folder=folder,
                        texts=texts,
                        lang=lang,
                        cond=cond,
                    ):
                        selection = None
                        extra = folder / "oracle.jsonl"
                        if system != "oracle":
                            selection = select_into(
                                ctx.out, system, _read(folder, "usage"), _read(folder, "training"),
                                _read(folder, "pool"), settings.budget, fmt="jsonl",
                                encoder=config.encoder, seed=seed, target_lang=lang,
                            )  # fmt: skip
                            chosen = _read(ctx.out, "selection")
                            selection["precision"] = _genre_share(chosen, cond.usage_genre())
                            selection["target_language_share"] = sum(
                                r.lang == lang for r in chosen
                            ) / max(len(chosen), 1)
                            extra = ctx.out / "selection.jsonl"
                        scored = _train_and_score(
                            ctx,
                            config,
                            base,
                            lang,
                            folder,
                            extra,
                            seed,
                            lr,
                            steps[cond.name],
                            texts,
                        )
                        return {**scored, "selection": selection, "lr": lr}

                    unit = units.run(
                        f"{system}__{name}__{lang}__s{seed}", compute, lr=lr, steps=steps[name]
                    )
                    results.append(
                        unit | {"system": system, "condition": name, "lang": lang, "seed": seed}
                    )
    summary = summarize_genres(results, settings)
    effects = gap_effects(results)
    table = genre_table(summary, lr, steps) + effects_table(effects)
    plot = plot_genres(summary, out / "results.png")
    path = write_results(
        out,
        config,
        {"lr": lr, "lr_sweep": {f"{k:g}": v["nll"] for k, v in sweep.items()}, "steps": steps,
         "summary": summary, "gap_minus_control": effects, "table": table, "units": results},
    )  # fmt: skip
    return {"results": path, "plot": plot, "table": table}


# -- summary --------------------------------------------------------------------------------


def _per_text_runs(results: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(condition, lang): {system: {seed: per_text}}}``, the input of the paired statistics."""
    groups: dict[tuple[str, str], dict[str, dict[Any, Any]]] = {}
    for unit in results:
        key = (unit["condition"], unit["lang"])
        groups.setdefault(key, {}).setdefault(unit["system"], {})[unit["seed"]] = unit["per_text"]
    return groups


def summarize_genres(results: list[dict[str, Any]], settings: GenreSettings) -> dict[str, Any]:
    """Per condition and language: each system's NLL and its paired difference to random and base."""
    groups = _per_text_runs(results)
    extras: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for unit in results:
        extras.setdefault((unit["condition"], unit["lang"], unit["system"]), []).append(unit)
    summary: dict[str, Any] = {}
    for (cond, lang), systems in groups.items():
        rows = {}
        for system, runs in systems.items():
            units = extras[cond, lang, system]
            selections = [u["selection"] for u in units if u.get("selection")]
            trains = [u["train"] for u in units if u.get("train")]
            row = {"nll": mean_nll(runs)}
            if "random" in systems and system not in ("random", "base"):
                row["vs_random"] = paired_difference(runs, systems["random"])
            if system == "compass" and "lang-similarity" in systems:  # the paper's own baseline
                row["vs_lang_similarity"] = paired_difference(runs, systems["lang-similarity"])
            if "base" in systems and system != "base":
                row["vs_base"] = paired_difference(runs, systems["base"])
            if selections:
                row["precision"] = float(np.mean([s["precision"] for s in selections]))
                row["js_after"] = float(np.mean([s["js_after"] for s in selections]))
                row["js_before"] = float(np.mean([s["js_before"] for s in selections]))
                row["target_language_share"] = float(
                    np.mean([s["target_language_share"] for s in selections])
                )
                langs = Counter()
                for s in selections:
                    langs.update(s["languages"])
                row["languages"] = dict(langs.most_common(5))
            if trains:
                row["train"] = {
                    k: float(np.mean([t[k] for t in trains])) for k in ("steps", "epochs", "tokens")
                }
            rows[system] = row
        # How many held-out items an interval of +-0.02 nats (item part) would need, from the
        # spread of the comparison the experiment is about (compass - random) where it ran.
        spread = rows.get("compass", {}).get("vs_random") or rows.get("random", {}).get("vs_base")
        summary[f"{cond}/{lang}"] = {
            "systems": rows,
            "items_needed_for_0.02": items_needed(spread["item_sd"], 0.02)
            if spread and spread.get("item_sd")
            else None,
        }
    return summary


def gap_effects(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per language: (compass - random) in the gap minus (compass - random) in the control.

    What of COMPASS's advantage belongs to the gap: anything it gains in the
    control (no gap) comes from elsewhere, e.g. drawing more of the usage's
    genre or of languages the target learns from.
    """
    groups = _per_text_runs(results)
    pairs = {
        (cond, lang): (systems["compass"], systems["random"])
        for (cond, lang), systems in groups.items()
        if "compass" in systems and "random" in systems
    }
    langs = sorted({lang for _, lang in pairs})
    return {
        lang: difference_in_differences(pairs["gap", lang], pairs["control", lang])
        for lang in langs
        if ("gap", lang) in pairs and ("control", lang) in pairs
    }


def effects_table(effects: dict[str, Any]) -> str:
    if not effects:
        return ""
    lines = ["", "", "| lang | (compass − random) gap − control [95% CI] |", "| --- | ---: |"]
    lines += [f"| {lang} | {_interval(d)} |" for lang, d in effects.items()]
    return "\n".join(lines)


def _interval(d: dict[str, Any] | None) -> str:
    if not d:
        return "–"
    lo, hi = d["ci95"]
    return f"{d['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def genre_table(summary: dict[str, Any], lr: float, steps: dict[str, int]) -> str:
    lines = [
        f"lr {lr:g} (chosen on validation); steps per condition: "
        + ", ".join(f"{k} {v}" for k, v in steps.items()),
        "",
        "| condition/lang | system | held-out NLL [95% CI] | vs random [95% CI] | vs base | "
        "precision | JS after | epochs |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, part in summary.items():
        for system, row in part["systems"].items():
            nll = row["nll"]
            cells = [
                key,
                system,
                f"{nll['mean']:.3f} [{nll['ci95'][0]:.3f}, {nll['ci95'][1]:.3f}]",
                _interval(row.get("vs_random")),
                _interval(row.get("vs_base")),
                f"{row['precision']:.2f}" if "precision" in row else "–",
                f"{row['js_after']:.3f}" if "js_after" in row else "–",
                f"{row['train']['epochs']:.2f}" if "train" in row else "–",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_genres(summary: dict[str, Any], path: Path) -> Path:
    """Each system's NLL difference to random with its 95% interval: a row per language, a
    column per condition."""
    from lingualift.plotting import pyplot, save_figure

    plt = pyplot()
    conditions = list(dict.fromkeys(key.split("/")[0] for key in summary))
    langs = list(dict.fromkeys(key.split("/")[1] for key in summary))
    fig, axes = plt.subplots(
        len(langs), len(conditions), figsize=(3.6 * len(conditions), 3.2 * len(langs)),
        squeeze=False,
    )  # fmt: skip
    for (row, lang), (col, cond) in itertools.product(enumerate(langs), enumerate(conditions)):
        ax, key = axes[row][col], f"{cond}/{lang}"
        if key not in summary:
            ax.set_visible(False)
            continue
        rows = {s: r for s, r in summary[key]["systems"].items() if "vs_random" in r}
        names = list(rows)
        diffs = [rows[s]["vs_random"]["difference"] for s in names]
        low = [d - rows[s]["vs_random"]["ci95"][0] for s, d in zip(names, diffs, strict=True)]
        high = [rows[s]["vs_random"]["ci95"][1] - d for s, d in zip(names, diffs, strict=True)]
        ax.errorbar(range(len(names)), diffs, yerr=[low, high], fmt="o", capsize=4)
        ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
        ax.set_title(key, fontsize=9)
        ax.set_ylabel("held-out NLL − random (nats/token)", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(
        "Paired differences to random, 95% bootstrap intervals (items x seeds)", fontsize=9
    )
    fig.tight_layout()
    return save_figure(fig, path)
