"""Settings of ``lingualift quickstart`` (defaults finish in under 10 minutes on 2 CPU cores)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from lingualift.config import bookkeeping
from lingualift.data import CORPUS_LANGUAGES
from lingualift.errors import require
from lingualift.languages import DOMINANT_LANGUAGE, normalize_language
from lingualift.placement import ModelSettings
from lingualift.training import LoraSettings, TrainingArgs


def _quickstart_training() -> TrainingArgs:
    # 8 sequences of 128 tokens a step as 2 micro-batches of 4: Gemma 3's 262k-token
    # vocabulary makes the logits the largest activation (8 x 128 in one pass peaks at
    # ~7 GB, 4 x 128 at ~4 GB).
    return TrainingArgs(
        lr=3e-4, max_steps=20, batch_size=4, grad_accum=2, max_length=128, warmup_steps=0.1,
        save_every=5,
    )  # fmt: skip


@dataclasses.dataclass
class QuickstartConfig(ModelSettings):
    """Settings of the quickstart job (defaults finish in under 10 minutes on 2 CPU cores); the
    base model with its precision and placement as every verb's."""

    lang: str = "sw"
    """Target (non-English) language, any code or name the embedded corpus has."""
    encoder: str = "e5-nano"
    """Sentence encoder of COMPASS (see lingualift.embed.get_encoder)."""
    out_dir: str = bookkeeping("runs/quickstart")
    """Where every stage's outputs and the report go."""
    seed: int = 0
    """Seed of the data draws, the selections and the cloze set."""
    train_books: str = "1-17"
    """Corpus books of the target-language training data (Genesis to Esther)."""
    n_train: int = 300
    """Target-language training verses (drawn from train_books)."""
    usage_books: str = "19,40,41"
    """Books the target-usage sample comes from (Psalms, Matthew, Mark)."""
    n_usage: int = 200
    """Verses in the target-usage sample COMPASS aims at."""
    n_reference: int = 800
    """Usage verses (usage_books) the adapter's reference profile is built from, so that
    'lingualift monitor' and 'lingualift ecda' can watch it at once (at least about 800:
    a smaller reference raises false alarms, docs/continual.md)."""
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
    lora: LoraSettings = dataclasses.field(default_factory=LoraSettings)
    """The LoRA adapter (rank 8, alpha 16, all linear layers)."""
    train: TrainingArgs = dataclasses.field(default_factory=_quickstart_training)
    """LoRA training: 20 steps of 8 x 128 packed tokens (micro-batches of 4), lr 3e-4."""
    shifcon_langs: list[str] = dataclasses.field(default_factory=lambda: ["fr", "hi", "zh"])
    """Extra languages in the ShifCon layer curve (English and the target are always in)."""
    vector_sentences: int = 96
    """Sentences per language for the ShifCon vectors and subspaces."""
    subspace_rank: int = 16
    """Principal directions per language and layer in the layer curve."""
    shifcon_train: Literal["auto", "always", "never"] = "auto"
    """Brief ShifCon training: 'auto' runs it only if the time budget allows."""
    shifcon_train_steps: int = 8
    """Optimizer steps of the brief ShifCon training (lr, rank and batch as the adapter's;
    the contrastive loss needs a step's sequences in one batch)."""
    shifcon_pairs: int = 64
    """Target/English verse pairs for ShifCon training (from train_books)."""
    eval_batch_size: int = 16
    """Sequences per forward pass in evaluation."""
    time_budget_min: float = 10.0
    """Wall-clock budget; optional stages are skipped when they would not fit."""
    overwrite: bool = bookkeeping(False)
    """Redo stages whose outputs were made with other settings."""

    def __post_init__(self) -> None:
        from lingualift.compass import METHODS

        super().__post_init__()
        self.lang = normalize_language(self.lang)
        require(
            self.lang != DOMINANT_LANGUAGE,
            f"The quickstart lifts a non-dominant language; choose lang other than {self.lang!r}.",
        )
        require(
            self.lang in CORPUS_LANGUAGES,
            f"The embedded corpus has no {self.lang!r} text; choose one of "
            f"{', '.join(CORPUS_LANGUAGES)}.",
        )
        for name in (
            "n_train", "n_usage", "n_reference", "n_heldout", "n_cloze", "budget",
            "pool_per_language",
        ):  # fmt: skip
            require(getattr(self, name) >= 1, f"{name} must be at least 1.")
        bad = [m for m in self.baselines if m not in METHODS or m == "compass"]
        require(not bad, f"Unknown baseline {bad[:1]}; use {', '.join(METHODS[1:])}.")
