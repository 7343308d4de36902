"""Configs of adapter training: the LoRA settings and the training run.

Both are plain dataclasses with a docstring under every field, so a recipe
(``recipes/train_sw.yaml``) and ``key=value`` overrides (``lora.r=16``) fill
them, and ``lingualift train --help`` lists them.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from lingualift.errors import LingualiftError
from lingualift.languages import normalize_language
from lingualift.models import DEFAULT_MODEL


@dataclasses.dataclass
class LoraSettings:
    """The LoRA adapter itself (what PEFT's ``LoraConfig`` receives)."""

    r: int = 8
    """Rank of the low-rank update."""
    alpha: float = 16.0
    """Scaling numerator: the update is multiplied by ``alpha / r``."""
    dropout: float = 0.05
    """Dropout on the adapter's input during training."""
    target_modules: str = "all-linear"
    """Which layers get an adapter: 'all-linear' (every linear layer but the output head)
    or a comma-separated list of module names such as 'q_proj,v_proj'."""

    def peft_config(self):
        """The equivalent ``peft.LoraConfig`` for a causal LM."""
        from peft import LoraConfig, TaskType

        targets: str | list[str] = self.target_modules
        if targets != "all-linear":
            targets = [t.strip() for t in targets.split(",") if t.strip()]
        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=targets,
            task_type=TaskType.CAUSAL_LM,
        )


@dataclasses.dataclass
class TrainConfig:
    """One LoRA training run for one target language."""

    lang: str = "sw"
    """Target language of the adapter (any ISO 639 code or English name)."""
    model: str = DEFAULT_MODEL
    """Base model: an embedded name, a hub id or a local folder."""
    data: str | None = None
    """Training data: a JSONL/CSV/TSV/Parquet file, 'hf:<dataset>', or verses of the embedded
    corpus as 'corpus:<lang>[:<books>[:<first n>]]' (e.g. 'corpus:sw:nt:2000'). Optional when a
    selection is given."""
    data_format: Literal["auto", "text", "prompt_completion", "chat"] = "auto"
    """How rows become examples: plain text (loss on every token), prompt/completion (loss on the
    completion only), chat messages (the tokenizer's chat template, loss on assistant turns), or
    'auto' to pick from the fields of the first row."""
    text_field: str = "text"
    """Field holding the text of plain-text rows."""
    prompt_field: str = "prompt"
    """Field holding the prompt of prompt/completion rows."""
    completion_field: str = "completion"
    """Field holding the completion of prompt/completion rows."""
    messages_field: str = "messages"
    """Field holding a list of {role, content} messages in chat rows."""
    selection: str | None = None
    """A COMPASS selection (JSONL/Parquet of records written by 'lingualift select') mixed into
    the training data as plain text."""
    selection_limit: int | None = None
    """Use at most this many selected records (in file order, i.e. best first)."""
    data_limit: int | None = None
    """Use at most this many rows of 'data' (handy for smoke runs)."""
    lora: LoraSettings = dataclasses.field(default_factory=LoraSettings)
    """The LoRA adapter: rank, alpha, dropout, target modules."""
    lr: float = 2e-4
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    schedule: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    """Learning-rate schedule after warm-up (transformers' get_scheduler names)."""
    warmup_steps: int = 0
    """Steps of linear warm-up from 0 to 'lr'."""
    max_steps: int = 0
    """Number of optimizer steps; 0 means derive it from 'epochs'."""
    epochs: float = 1.0
    """Passes over the training examples, used when max_steps is 0."""
    batch_size: int = 8
    """Sequences per micro-batch on each process."""
    grad_accum: int = 1
    """Micro-batches accumulated into one optimizer step."""
    max_length: int = 512
    """Longest sequence in tokens; longer examples are truncated (or split when packing)."""
    packing: bool = False
    """Concatenate examples into full 'max_length' rows (no padding waste)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm; 0 turns clipping off."""
    eval_fraction: float = 0.05
    """Share of the examples held out for the eval loss (at least one when there are two or more)."""
    eval_every: int = 0
    """Evaluate every this many steps (0: only at the end)."""
    save_every: int = 0
    """Write a resumable checkpoint every this many steps (0: never)."""
    keep_checkpoints: int = 2
    """How many recent checkpoints to keep."""
    log_every: int = 1
    """Record the training loss every this many steps."""
    seed: int = 0
    """Seed of the split, the data order, the adapter initialisation and dropout."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Training precision (mixed precision through accelerate for bf16/fp16)."""
    output_dir: str | None = None
    """Run folder for checkpoints, metrics and the loss plot (default runs/train-<lang>)."""
    store: str | None = None
    """Adapter store root (default $LINGUALIFT_HOME/adapters)."""
    promote: bool = True
    """Make the new version the language's current one."""
    resume: bool = False
    """Continue from the latest checkpoint in output_dir."""

    def __post_init__(self) -> None:
        self.lang = normalize_language(self.lang)
        if self.data is None and self.selection is None:
            raise LingualiftError(
                "No training data; set data=<file> (or data=corpus:<lang>) and/or selection=<file>."
            )
        positive = {
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "max_length": self.max_length,
            "lora.r": self.lora.r,
        }
        for name, value in positive.items():
            if value < 1:
                raise LingualiftError(f"{name} must be at least 1, got {value}.")
        if self.max_steps < 0 or (self.max_steps == 0 and self.epochs <= 0):
            raise LingualiftError("Set max_steps to a positive number or epochs above 0.")
        if not 0 <= self.eval_fraction < 1:
            raise LingualiftError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}.")
        if self.lr <= 0:
            raise LingualiftError(f"lr must be positive, got {self.lr}.")

    @property
    def run_dir(self) -> str:
        return self.output_dir or f"runs/train-{self.lang}"
