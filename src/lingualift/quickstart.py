"""``lingualift quickstart``: the main job end to end, on the embedded assets only.

For one non-English target language it

1. **data**: draws training verses, a target-usage sample, held-out verses (target
   and English) and a multilingual pool from the embedded corpus, and builds a
   cloze multiple-choice set from the held-out books;
2. **select**: runs COMPASS and the baselines (random, lang-similarity) at the
   same budget (``lingualift.compass.pipeline.run_select``);
3. **adapter**: trains a LoRA adapter on the training verses + the COMPASS
   selection (``lingualift.adapters.train``);
4. **shifcon**: computes language vectors and the layer area
   (``lingualift.shifcon``), so the shift can be applied at inference;
5. **eval**: base vs adapter vs ShifCon on held-out NLL (target and English) and
   on the cloze set (completion log-likelihood and answer letters);
6. **shifcon-train** (when the time budget allows): a brief ShifCon training
   run (LoRA + shift + contrastive loss), then evaluated like the others;
7. **report**: ``report.md`` (tables), ``report.json`` and ``results.png``.

This module only orchestrates library functions. Every stage writes its outputs
atomically and leaves a marker (``stages/<name>.json``) keyed by the settings it
depends on, so a second run, or a run after an interruption, skips what is done;
caches for the model conversion and embeddings live in ``$LINGUALIFT_HOME``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Literal

from lingualift.atomic import atomic_dir, atomic_write_text
from lingualift.config import to_dict
from lingualift.errors import require
from lingualift.languages import DOMINANT_LANGUAGE, language_name, normalize_language
from lingualift.models import DEFAULT_MODEL


@dataclasses.dataclass
class QuickstartConfig:
    """Settings of the quickstart job (defaults finish in under 20 minutes on 2 CPU cores)."""

    lang: str = "sw"
    """Target (non-English) language, any code or name the embedded corpus has."""
    model: str = DEFAULT_MODEL
    """Base model: an embedded name, a hub id or a local folder."""
    encoder: str = "e5-nano"
    """Sentence encoder of COMPASS (see lingualift.embed.get_encoder)."""
    out_dir: str = "runs/quickstart"
    """Where every stage's outputs and the report go."""
    seed: int = 0
    """Seed of the data draws, the selection, training and the cloze set."""
    train_books: str = "1-17"
    """Corpus books of the target-language training data (Genesis to Esther)."""
    n_train: int = 300
    """Target-language training verses (drawn from train_books)."""
    usage_books: str = "19,40,41"
    """Books the target-usage sample comes from (Psalms, Matthew, Mark)."""
    n_usage: int = 200
    """Verses in the target-usage sample COMPASS aims at."""
    heldout_books: str = "20,43"
    """Held-out books (Proverbs, John): never in training, pool or usage sample."""
    n_heldout: int = 60
    """Held-out verses scored for NLL, in the target language and in English."""
    n_cloze: int = 80
    """Cloze multiple-choice questions built from the held-out books."""
    cloze_letters: bool = False
    """Also score the cloze set as Global-MMLU answer letters (slower; small models sit near
    chance there, so the completion log-likelihood is the default measure)."""
    pool_langs: str = "all"
    """Pool languages: 'all' (every corpus language but the target) or a comma list."""
    pool_per_language: int = 70
    """Pool verses per language (from every book but the held-out ones)."""
    budget: int = 300
    """Items every selection method may choose (equal budget)."""
    baselines: list[str] = dataclasses.field(default_factory=lambda: ["random", "lang-similarity"])
    """Selection baselines compared with COMPASS (random, lang-similarity, all)."""
    lora_steps: int = 20
    """LoRA optimizer steps."""
    lora_r: int = 8
    """LoRA rank."""
    lr: float = 3e-4
    """Peak learning rate of the LoRA adapter (and of brief ShifCon training)."""
    batch_size: int = 4
    """Training sequences per micro-batch. Gemma 3's 262k-token vocabulary makes the
    logits the largest activation: 8 x 128 tokens in one pass peak at ~7 GB, 4 x 128 at ~4 GB."""
    grad_accum: int = 2
    """Micro-batches per optimizer step (an optimizer step sees batch_size x grad_accum
    sequences; ShifCon training takes them as one batch: its contrastive loss needs them together)."""
    max_length: int = 128
    """Training sequence length in tokens (examples are packed)."""
    shifcon_langs: list[str] = dataclasses.field(default_factory=lambda: ["fr", "hi", "zh"])
    """Extra languages in the ShifCon layer curve (English and the target are always in)."""
    vector_sentences: int = 96
    """Sentences per language for the ShifCon vectors and subspaces."""
    subspace_rank: int = 16
    """Principal directions per language and layer in the layer curve."""
    shifcon_train: Literal["auto", "always", "never"] = "auto"
    """Brief ShifCon training: 'auto' runs it only if the time budget allows."""
    shifcon_train_steps: int = 8
    """Optimizer steps of the brief ShifCon training."""
    shifcon_pairs: int = 64
    """Target/English verse pairs for ShifCon training (from train_books)."""
    eval_batch_size: int = 16
    """Sequences per forward pass in evaluation."""
    time_budget_min: float = 18.0
    """Wall-clock budget; optional stages are skipped when they would not fit."""
    overwrite: bool = False
    """Redo every stage even when its outputs exist."""


# -- stage bookkeeping ------------------------------------------------------------------


def _key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _Stages:
    """Markers of finished stages: ``stages/<name>.json`` holding the stage key and results."""

    def __init__(self, root: Path, overwrite: bool, total: int) -> None:
        self.root = root / "stages"
        self.overwrite = overwrite
        self.total = total
        self.count = 0
        self.timings: dict[str, Any] = {}

    def done(self, name: str, key: str) -> dict[str, Any] | None:
        path = self.root / f"{name}.json"
        if self.overwrite or not path.is_file():
            return None
        payload = json.loads(path.read_text())
        return payload if payload.get("key") == key else None

    def mark(self, name: str, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        payload = {"key": key, **payload}
        atomic_write_text(self.root / f"{name}.json", json.dumps(payload, indent=2) + "\n")
        return payload

    def announce(self, name: str, what: str, cached: bool) -> None:
        self.count += 1
        state = "cached, skipped" if cached else what
        print(
            f"[quickstart {self.count}/{self.total}] {name}: {state}", file=sys.stderr, flush=True
        )


def _fresh_dir(path: Path, key: str) -> None:
    """Empty ``path`` unless it holds partial work (checkpoints) of the same key."""
    stamp = path / ".key"
    if path.exists() and (not stamp.is_file() or stamp.read_text() != key):
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)


# -- stages -----------------------------------------------------------------------------


def _books_except(excluded: str) -> list[int]:
    from lingualift.data import parse_books

    held = set(parse_books(excluded))
    return [b for b in parse_books("all") if b not in held]


def _sample(records: list[Any], n: int, rng: Any) -> list[Any]:
    if n >= len(records):
        return list(records)
    keep = sorted(rng.choice(len(records), n, replace=False).tolist())
    return [records[i] for i in keep]


def _stage_data(config: QuickstartConfig, lang: str, folder: Path) -> dict[str, Any]:
    import numpy as np

    from lingualift.data import CORPUS_LANGUAGES, ParallelCorpus, Record, write_records

    corpus = ParallelCorpus()
    rng = np.random.default_rng(config.seed)
    train = _sample(corpus.monolingual(lang, config.train_books), config.n_train, rng)
    usage = _sample(corpus.monolingual(lang, config.usage_books), config.n_usage, rng)
    if config.pool_langs == "all":
        pool_langs = [x for x in CORPUS_LANGUAGES if x != lang]
    else:
        pool_langs = [normalize_language(x) for x in config.pool_langs.split(",") if x.strip()]
    require(
        lang not in pool_langs and pool_langs,
        f"pool_langs must name languages other than {lang!r}; use 'all' or e.g. fr,id,hi.",
    )
    pool_books = _books_except(config.heldout_books)
    pool: list[Record] = []
    for other in pool_langs:
        drawn = _sample(corpus.monolingual(other, pool_books), config.pool_per_language, rng)
        pool += [dataclasses.replace(r, id=f"{other}:{r.id}") for r in drawn]
    for name, records in (("training", train), ("usage sample", usage)):
        require(records, f"No {lang!r} verses for the {name}; check the books settings.")
    with atomic_dir(folder, overwrite=True) as tmp:
        write_records(train, tmp / "train.jsonl")
        write_records(usage, tmp / "usage.jsonl")
        write_records(pool, tmp / "pool.jsonl")
    return {
        "n_train": len(train),
        "n_usage": len(usage),
        "n_pool": len(pool),
        "pool_langs": pool_langs,
    }


def _stage_heldout(config: QuickstartConfig, lang: str, folder: Path) -> dict[str, Any]:
    import numpy as np

    from lingualift.data import ParallelCorpus, write_records
    from lingualift.evaluation.cloze import build_cloze, write_cloze

    corpus = ParallelCorpus()
    rng = np.random.default_rng(config.seed)
    english = {r.id: r for r in corpus.monolingual(DOMINANT_LANGUAGE, config.heldout_books)}
    held = [r for r in corpus.monolingual(lang, config.heldout_books) if r.id in english]
    require(held, f"No {lang!r} verses in the held-out books {config.heldout_books!r}.")
    held = _sample(held, config.n_heldout, rng)
    heldout = [dataclasses.replace(r, id=f"{lang}:{r.id}") for r in held]
    heldout += [dataclasses.replace(english[r.id], id=f"en:{r.id}") for r in held]
    cloze = build_cloze(lang, config.heldout_books, config.n_cloze, config.seed)
    with atomic_dir(folder, overwrite=True) as tmp:
        write_records(heldout, tmp / "heldout.jsonl")
        write_cloze(cloze, tmp / "cloze.jsonl")
    return {"n_heldout": len(held), "n_cloze": len(cloze)}


def _stage_select(config: QuickstartConfig, lang: str, data: Path, method: str, out: Path):
    from lingualift.compass.pipeline import SelectConfig, run_select

    run_select(
        SelectConfig(
            target=str(data / "usage.jsonl"),
            training=str(data / "train.jsonl"),
            pool=str(data / "pool.jsonl"),
            target_lang=lang,
            method=method,  # type: ignore[arg-type]
            budget=config.budget,
            encoder=config.encoder,
            seed=config.seed,
            out_dir=str(out),
            overwrite=True,
        )
    )
    report = json.loads((out / "report.json").read_text())
    return {
        "js_before": report["js_before"],
        "js_after": report["js_after"],
        "n_selected": report["n_selected"],
        "n_clusters": report["n_clusters"],
        "languages": report["languages"],
    }


def _stage_adapter(config: QuickstartConfig, lang: str, data: Path, selection: Path, out: Path):
    from lingualift.adapters import LoraSettings, TrainConfig, train

    result = train(
        TrainConfig(
            lang=lang,
            model=config.model,
            data=str(data / "train.jsonl"),
            selection=str(selection),
            lora=LoraSettings(r=config.lora_r, alpha=2.0 * config.lora_r),
            lr=config.lr,
            warmup_steps=max(1, config.lora_steps // 10),
            max_steps=config.lora_steps,
            batch_size=config.batch_size,
            grad_accum=config.grad_accum,
            max_length=config.max_length,
            packing=True,
            save_every=max(1, config.lora_steps // 4),
            # Resume only what an interrupted run left (otherwise the trainer warns).
            resume=any((out / "train" / "checkpoints").glob("step-*")),
            seed=config.seed,
            output_dir=str(out / "train"),
            store=str(out / "adapters"),
        )
    )
    keys = ("steps", "train_rows", "eval_rows", "eval_loss_before", "eval_loss", "train_seconds")
    return {"adapter": str(result.adapter.path), **{k: result.metrics[k] for k in keys}}


def _stage_shifcon(config: QuickstartConfig, lang: str, folder: Path) -> dict[str, Any]:
    from lingualift.shifcon.area import area_from_config
    from lingualift.shifcon.config import LayersConfig, VectorsConfig
    from lingualift.shifcon.vectors import vectors_from_config

    langs = list(dict.fromkeys([lang, *(normalize_language(x) for x in config.shifcon_langs)]))
    vectors_from_config(
        VectorsConfig(
            out=str(folder),
            model=config.model,
            langs=[x for x in langs if x != DOMINANT_LANGUAGE],
            books=config.train_books,
            per_language=config.vector_sentences,
            batch_size=config.eval_batch_size,
            max_length=64,
            subspace_rank=config.subspace_rank,
        )
    )
    shifcon, record = area_from_config(LayersConfig(shifcon=str(folder)))
    return {
        "a": shifcon.a,
        "b": shifcon.b,
        "num_layers": shifcon.vectors.num_layers,
        "languages": shifcon.languages,
        "mean_curve": [round(x, 4) for x in record["curves"]["mean"]],
    }


def _stage_shifcon_train(config: QuickstartConfig, lang: str, shifcon: Path, out: Path):
    from lingualift.shifcon.config import TrainConfig as ShifConTrainConfig
    from lingualift.shifcon.trainer import train_from_config

    metrics = train_from_config(
        ShifConTrainConfig(
            out=str(out),
            shifcon=str(shifcon),
            model=config.model,
            langs=[lang],
            books=config.train_books,
            per_language=config.shifcon_pairs,
            lora_r=config.lora_r,
            lr=config.lr,
            max_steps=config.shifcon_train_steps,
            batch_size=config.batch_size * config.grad_accum,
            max_length=64,
            save_every=max(1, config.shifcon_train_steps // 2),
            seed=config.seed,
        )
    )
    keys = ("steps", "final_loss", "final_gen", "final_con", "a", "b")
    return {k: metrics.get(k) for k in keys} | {"adapter": str(out / "adapter")}


def _stage_eval(
    config: QuickstartConfig, heldout_dir: Path, adapters: str | None, shifcon: str | None
) -> dict[str, Any]:
    from lingualift.data import read_records
    from lingualift.evaluation.heldout import HeldoutSet, score_heldout
    from lingualift.evaluation.loading import load_for_eval

    model, tokenizer, sc = load_for_eval(config.model, adapters, shifcon)
    texts: dict[str, list[str]] = {}
    for record in read_records(heldout_dir / "heldout.jsonl"):
        texts.setdefault(record.lang, []).append(record.text)
    rows = [json.loads(line) for line in (heldout_dir / "cloze.jsonl").read_text().splitlines()]
    lang = rows[0]["lang"]
    scores = score_heldout(
        model, tokenizer, HeldoutSet(texts, {lang: rows}), sc,
        batch_size=config.eval_batch_size, letters=config.cloze_letters, progress=True,
    )  # fmt: skip
    cloze = scores[lang]
    letter_acc = cloze.get("cloze_letter_acc")
    return {
        "nll": {k: round(v["nll"], 4) for k, v in scores.items()},
        "perplexity": {k: round(v["perplexity"], 2) for k, v in scores.items()},
        "nll_tokens": {k: v["n_tokens"] for k, v in scores.items()},
        **{k: round(cloze[k], 4) for k in ("cloze_acc", "cloze_acc_norm", "cloze_acc_norm_stderr")},
        "cloze_letter_acc": None if letter_acc is None else round(letter_acc, 4),
        "n_cloze": cloze["cloze_n"],
    }


# -- the job ----------------------------------------------------------------------------


def run_quickstart(config: QuickstartConfig) -> Path:
    """Run (or resume) every stage; returns the path of ``report.md``."""
    started = time.perf_counter()
    lang = normalize_language(config.lang)
    require(
        lang != DOMINANT_LANGUAGE,
        f"The quickstart lifts a non-dominant language; choose lang other than {lang!r}.",
    )
    from lingualift.data.corpus import CORPUS_LANGUAGES

    require(
        lang in CORPUS_LANGUAGES,
        f"The embedded corpus has no {lang!r} text; choose one of {', '.join(CORPUS_LANGUAGES)}.",
    )
    for name in (
        "n_train",
        "n_usage",
        "n_heldout",
        "n_cloze",
        "budget",
        "lora_steps",
        "batch_size",
        "grad_accum",
    ):
        require(getattr(config, name) >= 1, f"{name} must be at least 1.")
    bad = [m for m in config.baselines if m not in ("random", "lang-similarity", "all")]
    require(not bad, f"Unknown baseline {bad[:1]}; use random, lang-similarity or all.")
    out = Path(config.out_dir)
    methods = ["compass", *dict.fromkeys(config.baselines)]
    stages = _Stages(out, config.overwrite, total=len(methods) + 9)
    results: dict[str, Any] = {}

    def run(name: str, key: str, what: str, fn) -> dict[str, Any]:
        cached = stages.done(name, key)
        stages.announce(name, what, cached is not None)
        if cached is not None:
            return cached
        t0 = time.perf_counter()
        payload = fn()
        payload["seconds"] = round(time.perf_counter() - t0, 1)
        return stages.mark(name, key, payload)

    data_dir = out / "data"
    data_key = _key(
        "data", lang, config.seed, config.train_books, config.n_train, config.usage_books,
        config.n_usage, config.heldout_books, config.pool_langs, config.pool_per_language,
    )  # fmt: skip
    results["data"] = run(
        "data", data_key, "drawing training, usage and pool verses",
        lambda: _stage_data(config, lang, data_dir),
    )  # fmt: skip
    heldout_dir = out / "heldout"
    heldout_key = _key(
        "heldout", lang, config.seed, config.heldout_books, config.n_heldout, config.n_cloze,
        config.cloze_letters, config.model,
    )  # fmt: skip
    results["heldout"] = run(
        "heldout", heldout_key, "held-out verses and the cloze set",
        lambda: _stage_heldout(config, lang, heldout_dir),
    )  # fmt: skip

    selections = {}
    for method in methods:
        key = _key("select", data_key, method, config.budget, config.encoder)
        selections[method] = run(
            f"select-{method}", key, f"{method} selection of {config.budget} pool items",
            lambda m=method: _stage_select(config, lang, data_dir, m, out / "select" / m),
        )  # fmt: skip
    results["selection"] = selections

    adapter_key = _key(
        "adapter", selections["compass"]["key"], config.model, config.lora_steps, config.lora_r,
        config.lr, config.batch_size, config.grad_accum, config.max_length,
    )  # fmt: skip

    def adapter_stage():
        _fresh_dir(out / "train", adapter_key)
        return _stage_adapter(config, lang, data_dir, out / "select/compass/selection.parquet", out)

    results["adapter"] = run(
        "adapter", adapter_key, f"training a LoRA adapter ({config.lora_steps} steps)",
        adapter_stage,
    )  # fmt: skip

    shifcon_key = _key(
        "shifcon", lang, config.model, config.train_books, config.shifcon_langs,
        config.vector_sentences, config.subspace_rank,
    )  # fmt: skip
    results["shifcon"] = run(
        "shifcon", shifcon_key, "language vectors and the layer area",
        lambda: _stage_shifcon(config, lang, out / "shifcon"),
    )  # fmt: skip

    variants: dict[str, tuple[str | None, str | None, str]] = {
        "base": (None, None, _key("eval-base", heldout_key)),
        "lora": (results["adapter"]["adapter"], None, _key("eval-lora", heldout_key, adapter_key)),
        "shifcon": (None, str(out / "shifcon"), _key("eval-shifcon", heldout_key, shifcon_key)),
    }
    evals: dict[str, Any] = {}
    for variant, (adapters, shifcon, key) in variants.items():
        evals[variant] = run(
            f"eval-{variant}", key, "held-out NLL and cloze accuracy",
            lambda a=adapters, s=shifcon: _stage_eval(config, heldout_dir, a, s),
        )  # fmt: skip

    # Optional: brief ShifCon training, only when it fits in what is left of the budget.
    train_key = _key(
        "shifcon-train", shifcon_key, config.shifcon_train_steps, config.shifcon_pairs,
        config.lr, config.lora_r, config.batch_size, config.grad_accum,
    )  # fmt: skip
    step_s = results["adapter"]["train_seconds"] / max(1, results["adapter"]["steps"])
    eval_s = max(e["seconds"] for e in evals.values())
    estimate = 2.0 * step_s * config.shifcon_train_steps + eval_s + 30
    left = 60 * config.time_budget_min - (time.perf_counter() - started)

    def shifcon_train_stage():
        if config.shifcon_train == "never" or (config.shifcon_train == "auto" and estimate > left):
            return {"skipped": f"estimated {estimate:.0f} s, {max(left, 0):.0f} s of budget left"}
        _fresh_dir(out / "shifcon-train", train_key)
        trained = _stage_shifcon_train(config, lang, out / "shifcon", out / "shifcon-train")
        trained["eval"] = _stage_eval(
            config, heldout_dir, trained["adapter"], str(out / "shifcon-train" / "shifcon")
        )
        return trained

    results["shifcon_train"] = run(
        "shifcon-train", _key(train_key, heldout_key, config.shifcon_train),
        f"brief ShifCon training ({config.shifcon_train_steps} steps) if the budget allows",
        shifcon_train_stage,
    )  # fmt: skip
    if "eval" in results["shifcon_train"]:
        evals["shifcon-trained"] = results["shifcon_train"]["eval"]
    results["eval"] = evals

    stages.announce("report", "writing report.md, report.json, results.png", False)
    elapsed = time.perf_counter() - started
    return _write_report(config, lang, out, results, elapsed)


# -- report -----------------------------------------------------------------------------

_VARIANT_NAMES = {
    "base": "base model",
    "lora": "LoRA adapter (training + COMPASS selection)",
    "shifcon": "ShifCon shift on the base model (no training)",
    "shifcon-trained": "ShifCon trained briefly (LoRA + shift + contrastive)",
}


def _plot_results(evals: dict[str, Any], lang: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lingualift.atomic import atomic_path

    names = list(evals)
    panels = [
        (f"held-out NLL, {lang} (lower is better)", [evals[n]["nll"][lang] for n in names], None),
        ("held-out NLL, en (lower is better)", [evals[n]["nll"]["en"] for n in names], None),
        (
            f"cloze accuracy, {lang} (higher is better)",
            [evals[n]["cloze_acc_norm"] for n in names],
            [evals[n]["cloze_acc_norm_stderr"] for n in names],
        ),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    colors = ["tab:gray", "tab:blue", "tab:orange", "tab:green"][: len(names)]
    for ax, (title, values, errors) in zip(axes, panels, strict=True):
        # Bars start at zero so small differences are not drawn as large ones.
        bars = ax.bar(names, values, color=colors, yerr=errors, capsize=4 if errors else 0)
        ax.bar_label(bars, fmt="%.3f", fontsize=8, label_type="center", color="white")
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.set_ylim(0, max(values) * 1.25 or 1.0)
    axes[2].set_ylim(0, 1)
    axes[2].axhline(0.25, color="black", lw=1, ls="--", label="chance (4 options)")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def _write_report(
    config: QuickstartConfig, lang: str, out: Path, results: dict[str, Any], elapsed: float
) -> Path:
    evals, data, held = results["eval"], results["data"], results["heldout"]
    _plot_results(evals, lang, out / "results.png")
    name = language_name(lang)
    lines = [
        f"# lingualift quickstart: {name} ({lang}) on {config.model}",
        "",
        f"Training: {data['n_train']} {lang} verses (books {config.train_books}); target usage: "
        f"{data['n_usage']} verses (books {config.usage_books}); held out: books "
        f"{config.heldout_books} ({held['n_heldout']} verses per language for NLL, "
        f"{held['n_cloze']} cloze questions); pool: {data['n_pool']} verses in "
        f"{len(data['pool_langs'])} languages.",
        "",
        "## Selection (equal budget of "
        f"{config.budget} items; JS divergence of target usage vs training, bits)",
        "",
        "| method | JS before | JS after | top languages |",
        "| --- | --- | --- | --- |",
    ]
    for method, sel in results["selection"].items():
        top = ", ".join(f"{k} {v}" for k, v in list(sel["languages"].items())[:5])
        lines.append(f"| {method} | {sel['js_before']:.3f} | {sel['js_after']:.3f} | {top} |")
    sc = results["shifcon"]
    lines += [
        "",
        f"Cluster gaps: `select/compass/report.png`. ShifCon layer area: [{sc['a']}, {sc['b']}] "
        f"of {sc['num_layers']} layers (curve: `shifcon/layers.png`).",
        "",
        "## Evaluation",
        "",
        f"| variant | NLL {lang} | NLL en | cloze acc (per-char LL) | cloze acc (raw LL) |"
        + (" cloze acc (answer letter) |" if config.cloze_letters else ""),
        "| --- | --- | --- | --- | --- |" + (" --- |" if config.cloze_letters else ""),
    ]
    for variant, e in evals.items():
        letters = f" {e['cloze_letter_acc']:.3f} |" if config.cloze_letters else ""
        lines.append(
            f"| {variant} | {e['nll'][lang]:.3f} | {e['nll']['en']:.3f} | "
            f"{e['cloze_acc_norm']:.3f} ± {e['cloze_acc_norm_stderr']:.3f} | "
            f"{e['cloze_acc']:.3f} |{letters}"
        )
    ad = results["adapter"]
    lines += [
        "",
        "Variants: " + "; ".join(f"**{v}**: {_VARIANT_NAMES[v]}" for v in evals) + ".",
        f"NLL is mean token negative log-likelihood (nats) on {held['n_heldout']} held-out verses; "
        "cloze chance is 0.25. The LoRA adapter trained "
        f"{ad['steps']} steps (its own held-out loss {ad['eval_loss_before']:.3f} -> "
        f"{ad['eval_loss']:.3f}).",
    ]
    st = results["shifcon_train"]
    if "skipped" in st:
        lines.append(f"Brief ShifCon training was skipped ({st['skipped']}).")
    lines += [
        "",
        "Plots: `results.png` (NLL and cloze accuracy per variant), `select/compass/report.png`, "
        "`shifcon/layers.png`, `train/loss.png`.",
        "",
        "| stage | seconds |",
        "| --- | --- |",
    ]
    timings = {k: v.get("seconds") for k, v in _flat_stages(results).items()}
    lines += [f"| {k} | {v} |" for k, v in timings.items()]
    lines.append(f"\nThis run took {elapsed:.0f} s (stages marked done earlier were skipped).")
    report = {
        "lang": lang,
        "config": to_dict(config),
        **{k: _strip_keys(v) for k, v in results.items()},
        "stage_seconds": timings,
        "elapsed_seconds": round(elapsed, 1),
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return out / "report.md"


def _flat_stages(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    flat = {"data": results["data"], "heldout": results["heldout"]}
    flat |= {f"select-{m}": v for m, v in results["selection"].items()}
    flat |= {"adapter": results["adapter"], "shifcon": results["shifcon"]}
    flat |= {f"eval-{v}": e for v, e in results["eval"].items() if v != "shifcon-trained"}
    flat["shifcon-train (+ its eval)"] = results["shifcon_train"]
    return flat


def _strip_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_keys(v) for k, v in value.items() if k != "key"}
    return value


__all__ = ["QuickstartConfig", "run_quickstart"]
