"""Configs of the ShifCon verbs (``lingualift shifcon vectors|layers|train|generate|export``)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from lingualift.models import DEFAULT_MODEL


@dataclasses.dataclass
class VectorsConfig:
    """Compute language vectors (and principal subspaces) for a model."""

    out: str = "runs/shifcon"
    """Folder to write ``vectors.safetensors`` into (a ShifCon folder once ``layers`` ran)."""
    model: str = DEFAULT_MODEL
    """Base model: an embedded name, a hub id or a local folder."""
    langs: list[str] = dataclasses.field(
        default_factory=lambda: ["en", "fr", "de", "ru", "sw", "hi", "ar", "zh"]
    )
    """Languages to compute (the dominant language is always added)."""
    data: str | None = None
    """A records file (jsonl/csv/parquet with text and lang); default: the embedded corpus."""
    books: str = "ot"
    """Embedded-corpus books to read sentences from (kept apart from training/held-out books)."""
    per_language: int = 256
    """Sentences per language (hundreds suffice for a mean)."""
    batch_size: int = 16
    """Sentences per forward pass."""
    max_length: int = 128
    """Tokens kept per sentence."""
    subspace_rank: int = 16
    """Principal directions kept per language and layer for the layer curve (0 = none)."""
    dtype: str = "float32"
    """Model dtype: float32, bfloat16 or float16."""
    device: str | None = None
    """Torch device (cpu, cuda, ...); default: where the model loads."""


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
    plot: str | None = None
    """Extra path for the PNG of the curve (always also written as ``layers.png`` in the folder)."""


@dataclasses.dataclass
class TrainConfig:
    """Train with ``L = alpha * L_gen + beta * L_con`` (ShifCon) or plain LoRA (``shift=false, beta=0``)."""

    out: str = "runs/shifcon-train"
    """Output folder: ``adapter/`` (or ``model/``), ``shifcon/``, ``log.jsonl``, ``metrics.json``."""
    shifcon: str = "runs/shifcon"
    """ShifCon folder (vectors + layer area) from ``vectors`` and ``layers``."""
    model: str | None = None
    """Base model; default: the one the vectors were computed on."""
    langs: list[str] | None = None
    """Non-dominant languages to train on; default: every language with a vector."""
    data: str | None = None
    """Records file of parallel pairs: text/lang plus ``meta.parallel_text`` (English);
    with ``meta.prompt`` the generation loss covers only the completion. Default: the embedded corpus."""
    books: str = "nt"
    """Embedded-corpus books to train on."""
    per_language: int = 64
    """Pairs per language."""
    method: Literal["lora", "full"] = "lora"
    """LoRA adapters (PEFT, all linear layers) or full fine-tuning."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int | None = None
    """LoRA alpha; default ``2 * lora_r`` (the published setting)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA branch."""
    alpha: float = 0.5
    """Weight of the generation loss (published 0.5)."""
    beta: float = 2.0
    """Weight of the contrastive loss (published 2.0); 0 turns it off."""
    tau: float = 0.05
    """InfoNCE temperature (ours; the paper does not state one)."""
    shift: bool = True
    """Apply the shift hooks during training (false + beta 0 = plain LoRA baseline)."""
    lr: float = 1e-5
    """Peak learning rate (published 1e-5)."""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Learning-rate schedule after warmup (published: cosine)."""
    warmup_ratio: float = 0.03
    """Share of steps spent warming up."""
    epochs: int = 1
    """Passes over the data (published: one)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides epochs)."""
    batch_size: int = 8
    """Pairs per batch; every batch holds one language."""
    grad_accum: int = 1
    """Batches per optimizer step."""
    max_length: int = 128
    """Tokens kept per text."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    seed: int = 0
    """Seed for batching order and initialisation."""
    save_every: int = 50
    """Write a resumable checkpoint every this many optimizer steps (0 = only at the end)."""
    dtype: str = "float32"
    """Model dtype for training."""
    device: str | None = None
    """Torch device; default: where the model loads."""
    gradient_checkpointing: bool = False
    """Trade compute for memory on large models."""


@dataclasses.dataclass
class GenerateConfig:
    """Generate with the shift applied."""

    shifcon: str = "runs/shifcon"
    """ShifCon folder (vectors + layer area)."""
    prompts: list[str] = dataclasses.field(default_factory=list)
    """Prompts to complete (or give ``data``)."""
    data: str | None = None
    """Records file of prompts (text and lang)."""
    lang: str | None = None
    """Language of every prompt; default: identified per prompt (py3langid)."""
    model: str | None = None
    """Base model; default: the one the vectors were computed on."""
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
    out: str | None = None
    """Write the generations as JSONL records here; default: print them."""


@dataclasses.dataclass
class ExportConfig:
    """Write lm-evaluation-harness ``steered`` files, one per language."""

    shifcon: str = "runs/shifcon"
    """ShifCon folder (vectors + layer area)."""
    out: str = "runs/shifcon/steered"
    """Folder for ``<lang>.pt`` files."""
    langs: list[str] | None = None
    """Languages to export; default: every non-dominant language with a vector."""
    model: str | None = None
    """Model whose module names the hookpoints use; default: the vectors' base model."""
    overwrite: bool = False
    """Replace a non-empty ``out`` that does not hold an earlier export."""
