"""The ShifCon jobs: ``lingualift shifcon vectors|layers|train|generate|export``.

Typical order: ``vectors`` (per-language, per-layer mean hidden states and
principal subspaces) -> ``layers`` (the distance curve and the area ``[a, b]``;
the folder is then a ShifCon folder) -> ``train`` (LoRA or full fine-tuning
with the shift and the contrastive loss) -> ``generate`` / ``export``.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lingualift.config import bookkeeping, settings_of
from lingualift.errors import LingualiftError, require
from lingualift.languages import DOMINANT_LANGUAGE, normalize_language
from lingualift.placement import ModelSettings
from lingualift.planning import check_fits, prompt_tokens_bound
from lingualift.stages import Job, StageContext

# -- vectors ------------------------------------------------------------------------------


@dataclasses.dataclass
class VectorsConfig(ModelSettings):
    """Compute language vectors (and principal subspaces) for a model (its precision and
    placement: dtype, device, attn_implementation, quantization, trust_remote_code)."""

    out_dir: str = bookkeeping("runs/shifcon")
    """Folder to write ``vectors.safetensors`` into (a ShifCon folder once ``layers`` ran)."""
    langs: list[str] = dataclasses.field(
        default_factory=lambda: ["en", "fr", "de", "ru", "sw", "hi", "ar", "zh"]
    )
    """Languages to compute (the dominant language is always added)."""
    data: str | None = None
    """A records file (jsonl/csv/parquet with text and lang); default: the embedded corpus."""
    books: str = "ot"
    """Embedded-corpus books to read sentences from (kept apart from training/held-out books)."""
    per_language: int = 256
    """Sentences per language, the first ones of the books or the file (hundreds suffice)."""
    batch_size: int = 16
    """Sentences per forward pass."""
    max_length: int = 128
    """Tokens kept per sentence."""
    subspace_rank: int = 16
    """Principal directions kept per language and layer for the layer curve (0 = none)."""
    overwrite: bool = bookkeeping(False)
    """Recompute vectors that exist in ``out_dir`` with other settings."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("per_language", "batch_size", "max_length"):
            value = getattr(self, name)
            require(value >= 1, f"{name} must be at least 1, got {value}.")
        require(self.subspace_rank >= 0, "subspace_rank must not be negative.")


def texts_from_records(source: str, langs: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Group a records file's texts by language (optionally only ``langs``)."""
    from lingualift.data.sources import read_source

    groups: dict[str, list[str]] = defaultdict(list)
    for record in read_source(source, role="vector data"):
        require(
            record.lang, f"Record {record.id!r} in {source} has no language; add a lang column."
        )
        groups[record.lang].append(record.text)
    wanted = (
        list(dict.fromkeys([DOMINANT_LANGUAGE, *(normalize_language(x) for x in langs)]))
        if langs
        else [DOMINANT_LANGUAGE, *sorted(set(groups) - {DOMINANT_LANGUAGE})]
    )
    missing = [c for c in wanted if c not in groups]
    require(
        not missing,
        f"{source} has no text in {', '.join(missing)}; add it or drop those languages "
        "(the dominant language needs a vector too).",
    )
    return {c: groups[c] for c in wanted}


def run_vectors(config: VectorsConfig, progress: bool = True):
    """Compute and save the vectors; each language is kept as it finishes, so a rerun resumes."""
    from lingualift.shifcon.vectors import VECTORS_FILE, LanguageVectors, merge_vectors

    if config.data:
        texts = texts_from_records(config.data, config.langs)
        texts = {k: v[: config.per_language] for k, v in texts.items()}
        source = f"{config.data} (first {config.per_language} per language)"
    else:
        from lingualift.shifcon.corpus import corpus_texts

        texts = corpus_texts(config.langs, config.books, config.per_language)
        source = f"embedded corpus books={config.books} first {config.per_language} verses"
    settings = settings_of(config)
    settings["texts"] = {lang: len(sentences) for lang, sentences in texts.items()}
    out = Path(config.out_dir)
    # Forward passes that stop at the last decoder layer (no logits): refused here if too big.
    check_fits(
        "eval", config, batch_size=config.batch_size, max_length=config.max_length,
        full_logits=False,
    )  # fmt: skip

    def compute(ctx: StageContext) -> dict[str, Any]:
        from lingualift.models import load_causal_lm
        from lingualift.shifcon.vectors import compute_language_vectors

        model, tokenizer = load_causal_lm(config.model_settings())
        parts = []
        for lang, sentences in texts.items():
            part_path = ctx.work / f"{lang}.safetensors"  # finished languages survive a crash
            if not part_path.is_file():
                compute_language_vectors(
                    model,
                    tokenizer,
                    {lang: sentences},
                    base_model=config.model,
                    batch_size=config.batch_size,
                    max_length=config.max_length,
                    subspace_rank=config.subspace_rank,
                    progress=progress,
                ).save(part_path)
            parts.append(LanguageVectors.load(part_path))
        merge_vectors(parts, source).save(ctx.out / VECTORS_FILE)
        return {"languages": list(texts), "sentences": settings["texts"]}

    job = Job(out.parent, label="shifcon vectors", overwrite=config.overwrite)
    job.run("vectors", settings, compute, path=out, describe="computing language vectors")
    return LanguageVectors.load(out), out / VECTORS_FILE


# -- layers -------------------------------------------------------------------------------


@dataclasses.dataclass
class LayersConfig:
    """Choose the layer area ``[a, b]`` from the subspace-distance curve."""

    shifcon: str = "runs/shifcon"
    """Folder holding ``vectors.safetensors``; ``shifcon.json`` and ``layers.png`` are written there."""
    dominant: str = "en"
    """The dominant language whose subspace the others are compared with."""
    width: int | None = None
    """Band width ``b - a``; default ``max(2, round(3 L / 32))`` (3 for 32 layers)."""
    region: list[float] = dataclasses.field(default_factory=lambda: [0.25, 0.75])
    """Fractions of depth bounding the search region (the middle layers)."""
    rank: int | None = None
    """Principal directions compared per subspace; default: all stored."""
    a: int | None = None
    """Force the shift-toward layer instead of the rule (with ``b``)."""
    b: int | None = None
    """Force the shift-back layer instead of the rule (with ``a``)."""
    plot: str | None = bookkeeping(None)
    """Extra path for the PNG of the curve (always also written as ``layers.png`` in the folder)."""


def run_layers(config: LayersConfig):
    """Curve, band, ``shifcon.json`` and ``layers.png``; returns the ShifCon and the record."""
    from lingualift.shifcon.area import choose_area, plot_curve
    from lingualift.shifcon.core import ShifCon
    from lingualift.shifcon.vectors import LanguageVectors

    folder = Path(config.shifcon)
    vectors = LanguageVectors.load(folder)
    require(len(config.region) == 2, "region must be two fractions, e.g. [0.25, 0.75].")
    if (config.a is None) != (config.b is None):
        raise LingualiftError("Give both a and b to force the layer area, or neither.")
    region = (float(config.region[0]), float(config.region[1]))
    _, _, record = choose_area(vectors, config.dominant, config.width, region, config.rank)
    if config.a is not None:
        record.update(a=int(config.a), b=int(config.b), rule="forced by the user")
    shifcon = ShifCon(vectors, record["a"], record["b"], config.dominant, curve=record)
    shifcon.save(folder)
    title = f"{vectors.base_model}: subspace distance to {config.dominant} (rank {record['rank']})"
    plot_curve(record, folder / "layers.png", title)
    if config.plot:
        plot_curve(record, config.plot, title)
    return shifcon, record


# -- generate -----------------------------------------------------------------------------


@dataclasses.dataclass
class GenerateConfig(ModelSettings):
    """Generate with the shift applied (precision and placement as every verb's)."""

    model: str | None = None
    """Base model; default: the one the vectors were computed on."""
    shifcon: str = "runs/shifcon"
    """ShifCon folder (vectors + layer area)."""
    prompts: list[str] = dataclasses.field(default_factory=list)
    """Prompts to complete (or give ``data``)."""
    data: str | None = None
    """Records file of prompts (text and lang)."""
    lang: str | None = None
    """Language of every prompt; default: identified per prompt (lingualift.langid)."""
    adapter: str | None = None
    """A PEFT adapter folder to load on top (e.g. ``<train out>/adapter``)."""
    max_new_tokens: int = 48
    """Tokens to generate per prompt."""
    do_sample: bool = False
    """Sample instead of greedy decoding."""
    temperature: float = 0.7
    """Sampling temperature (with do_sample)."""
    chat: bool = False
    """Wrap each prompt in the tokenizer's chat template."""
    no_shift: bool = False
    """Generate without the shift (for comparison)."""
    out: str | None = bookkeeping(None)
    """Write the generations as JSONL records here; default: print them."""


def run_shifcon_generate(config: GenerateConfig) -> list[dict[str, str]]:
    """Complete the prompts with the shift (and an optional adapter); write or return them."""
    from lingualift.data import Record, write_records
    from lingualift.evaluation.loading import apply_adapters
    from lingualift.models import load_causal_lm
    from lingualift.shifcon.core import ShifCon
    from lingualift.shifcon.generate import generate

    shifcon = ShifCon.load(config.shifcon)
    prompts, langs = list(config.prompts), None
    if config.data:
        from lingualift.data.sources import read_source

        records = read_source(config.data, role="prompts")
        prompts += [r.text for r in records]
        if config.lang is None and all(r.lang for r in records) and not config.prompts:
            langs = [r.lang for r in records]
    if config.lang:
        langs = config.lang
    settings = config.model_settings(config.model or shifcon.base_model)
    check_fits(  # the prompts decode as one batch
        "serve", settings, batch_size=max(1, len(prompts)),
        max_length=prompt_tokens_bound(prompts, chat=config.chat) + config.max_new_tokens,
    )  # fmt: skip
    model, tokenizer = load_causal_lm(settings)
    if config.adapter:
        model = apply_adapters(model, [config.adapter], merge=False)
    extra = {"temperature": config.temperature} if config.do_sample else {}
    rows = generate(
        model,
        tokenizer,
        None if config.no_shift else shifcon,
        prompts,
        langs,
        max_new_tokens=config.max_new_tokens,
        chat=config.chat,
        do_sample=config.do_sample,
        **extra,
    )
    if config.out:
        write_records(
            [
                Record(
                    id=str(i), text=r["completion"], lang=r["lang"], meta={"prompt": r["prompt"]}
                )
                for i, r in enumerate(rows)
            ],
            config.out,
        )
    return rows


# -- export -------------------------------------------------------------------------------


@dataclasses.dataclass
class ExportConfig:
    """Write lm-evaluation-harness ``steered`` files, one per language."""

    shifcon: str = "runs/shifcon"
    """ShifCon folder (vectors + layer area)."""
    out_dir: str = bookkeeping("runs/shifcon/steered")
    """Folder for ``<lang>.pt`` files."""
    langs: list[str] | None = None
    """Languages to export; default: every non-dominant language with a vector."""
    model: str | None = None
    """Model whose module names the hookpoints use; default: the vectors' base model."""
    overwrite: bool = bookkeeping(False)
    """Replace a non-empty ``out_dir`` that does not hold an earlier export."""


def run_export(config: ExportConfig) -> list[Path]:
    from lingualift.models import load_config_only
    from lingualift.shifcon.core import ShifCon
    from lingualift.shifcon.export import export_steered

    shifcon = ShifCon.load(config.shifcon)
    model = load_config_only(config.model) if config.model else None
    return export_steered(
        shifcon, config.out_dir, config.langs, model, config.overwrite, source=config.shifcon
    )
