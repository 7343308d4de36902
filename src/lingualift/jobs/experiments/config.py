"""The configs of ``lingualift experiment``: a shared base and one dataclass per experiment.

:class:`ExperimentConfig` holds what every experiment has (model, languages,
seeds, training, LoRA, evaluation batches); the mixins hold what several share
(held-out verses, the cloze set, COMPASS's data samples, ShifCon's vectors and
pairs); each experiment's class adds its own keys. The names that select them
(``experiment: <name>`` in a recipe) live in :mod:`lingualift.jobs.experiments.registry`.

Bookkeeping keys (:func:`lingualift.config.bookkeeping`) stay out of the units'
fingerprints: the output folder, and the keys that choose *which* units run
(languages, seeds, methods, bands...), since every unit's name already says its
own language, seed and system. Adding a seed or a method to a finished
experiment therefore reuses every unit it already has.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from lingualift.compass.baselines import METHODS
from lingualift.config import bookkeeping
from lingualift.continual.reference import SMALL_REFERENCE
from lingualift.errors import require
from lingualift.languages import DOMINANT_LANGUAGE, normalize_language
from lingualift.placement import ModelSettings
from lingualift.training import LoraSettings, TrainingArgs

SHIFCON_ABLATIONS = ("shift-trained", "contrastive-only", "fixed-anchors")
"""ShifCon with one of its two parts: the shift with generation training only (beta 0,
alpha 1), or the contrastive loss without the shift (published alpha and beta); or whole
ShifCon with the English side of the contrastive loss as fixed targets (no gradient)."""

GENRE_CONDITIONS = ("gap", "control", "realistic")
"""The conditions of ``compass_genres`` (see :mod:`lingualift.jobs.experiments.genres`)."""

ECDA_VARIANTS = ("ecda+usage", "ecda+lang")
"""ECDA systems of ``ecda_drift`` beside plain ECDA: the update also trains on the drifted
queries (``update.usage_as_training``), or COMPASS ranks target-language pool items first
(``update.target_language_first``)."""


def _experiment_training() -> TrainingArgs:
    return TrainingArgs(lr=2e-4, max_steps=16, batch_size=4, max_length=64, warmup_steps=0.1)


def _check_methods(methods: list[str]) -> None:
    unknown = [m for m in methods if m not in METHODS]
    require(not unknown, f"Unknown method(s) {', '.join(unknown)}; use {', '.join(METHODS)}.")


@dataclasses.dataclass
class ExperimentConfig(ModelSettings):
    """What every experiment on the embedded model has: the model (with its precision and
    placement), languages, seeds, training."""

    steps_from_epochs: ClassVar[bool] = False
    """Whether train.max_steps=0 is allowed (steps derived from epochs)."""

    out_dir: str | None = bookkeeping(None)
    """Output folder (default runs/experiments/<experiment>); one JSON per finished run is kept
    under units/, so a rerun resumes where an interrupted one stopped."""
    langs: list[str] = bookkeeping(default_factory=lambda: ["sw", "hi"])
    """Target (non-English) languages."""
    seeds: list[int] = bookkeeping(default_factory=lambda: [0, 1, 2])
    """Seeds; every trained system is run once per seed (selection, LoRA init, data order)."""
    train: TrainingArgs = dataclasses.field(default_factory=_experiment_training)
    """Optimisation of every trained system (steps, batch, length, lr; the seed is each run's)."""
    lora: LoraSettings = dataclasses.field(default_factory=LoraSettings)
    """The LoRA adapter of every trained system (rank 8, alpha 16, all linear layers)."""
    eval_batch_size: int = 8
    """Batch size of the NLL and cloze scoring."""
    eval_max_length: int = 128
    """Longest held-out window in tokens for the NLL."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.langs = [normalize_language(x) for x in self.langs]
        require(self.langs, "Give at least one target language in langs.")
        require(
            DOMINANT_LANGUAGE not in self.langs,
            f"langs are the non-English targets; drop {DOMINANT_LANGUAGE!r}.",
        )
        require(self.seeds, "Give at least one seed.")
        require(len(set(self.seeds)) == len(self.seeds), "seeds must be distinct.")
        require(
            self.train.max_steps >= 1 or self.steps_from_epochs,
            "train.max_steps must be at least 1: every system trains the same steps.",
        )

    @property
    def run_dir(self) -> str:
        """The output folder (run_experiment sets out_dir to runs/experiments/<name> if unset)."""
        require(self.out_dir, "Set out_dir=<folder> for the experiment's outputs.")
        return str(self.out_dir)


# -- what several experiments share (mixins: listed before ExperimentConfig in the bases) ------


@dataclasses.dataclass
class HeldoutVerses:
    """Held-out corpus verses every system is scored on."""

    heldout_books: str = "43"
    """Corpus books held out from every training and selection input (default John)."""
    heldout_per_language: int = 40
    """Held-out verses per language for the NLL."""

    def __post_init__(self) -> None:
        require(self.heldout_per_language >= 1, "heldout_per_language must be at least 1.")
        super().__post_init__()  # type: ignore[misc]


@dataclasses.dataclass
class ClozeSet(HeldoutVerses):
    """Held-out verses and a cloze verse-completion set drawn from the same books."""

    cloze_per_language: int = 32
    """Cloze verse-completion questions per language (lingualift.evaluation.cloze); 0 = none."""
    cloze_seed: int = 0
    """Seed of the cloze set (fixed across training seeds, so every system sees the same set)."""


@dataclasses.dataclass
class SelectionData:
    """The COMPASS inputs drawn from the corpus: usage, D_tr(t) and the pool."""

    usage_per_language: int = 200
    """Target-usage verses."""
    training_books: str = "1-17"
    """Books of D_tr(t), the target-language data the adapter is trained on anyway."""
    training_per_language: int = 200
    """Verses of D_tr(t)."""
    pool_books: str = "1-42,44-66"
    """Books of the multilingual pool (every other corpus language); excludes the held-out book."""
    pool_per_language: int = 60
    """Pool verses per pool language."""
    budget: int = 200
    """Items each budgeted selection takes ('all' takes the whole pool at the same steps)."""
    encoder: str = "e5-nano"
    """Sentence encoder of the selection."""
    data_seed: int = 0
    """Seed of the usage/training/pool samples (fixed, so embeddings are computed once)."""


@dataclasses.dataclass
class ShifConSetup:
    """ShifCon's language vectors, training pairs and loss weights."""

    shifcon: str | None = None
    """An existing ShifCon folder to reuse; default: compute vectors once into out_dir/shifcon."""
    vector_books: str = "ot"
    """Books the language vectors are computed from."""
    vector_per_language: int = 128
    """Sentences per language for the vectors and the layer curve."""
    train_books: str = "epistles"
    """Books of the parallel training pairs (English + each language)."""
    pairs_per_language: int = 64
    """Parallel pairs per language."""
    alpha: float = 0.5
    """ShifCon's generation-loss weight (published 0.5); plain LoRA uses 1."""
    beta: float = 2.0
    """ShifCon's contrastive-loss weight (published 2.0); plain LoRA uses 0."""
    tau: float = 0.05
    """InfoNCE temperature of the contrastive loss."""


# -- one config per experiment ----------------------------------------------------------------


@dataclasses.dataclass
class CompassVsBaselinesConfig(SelectionData, ClozeSet, ExperimentConfig):
    """compass_vs_baselines: LoRA on D_tr(t) + a COMPASS, random, lang-similarity or all
    selection at an equal budget and equal steps."""

    methods: list[str] = bookkeeping(default_factory=lambda: list(METHODS))
    """Selection methods to compare (compass, random, lang-similarity, all)."""
    usage_books: str = "19,40-42"
    """Books of the target-usage sample COMPASS fits on (Psalms + Matthew, Mark, Luke)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_methods(self.methods)


@dataclasses.dataclass
class GenreSettings:
    """compass_genres: a real semantic gap between genres, its control, a realistic pool."""

    conditions: list[str] = bookkeeping(default_factory=lambda: ["gap", "control"])
    """Which conditions to run: gap, control, realistic."""
    methods: list[str] = bookkeeping(default_factory=lambda: list(METHODS))
    """Selection methods compared in the gap condition."""
    side_methods: list[str] = bookkeeping(default_factory=lambda: ["compass", "random"])
    """Selection methods compared in the control and realistic conditions."""
    oracle: bool = bookkeeping(True)
    """Also train on target-language verses of the usage genre (the ceiling of a selection),
    in the gap and control conditions."""
    training_books: str = "1,2,6-10"
    """Books of D_tr(t) (narrative: Genesis, Exodus, Joshua-2 Samuel)."""
    gap_usage_books: str = "45-58"
    """gap: usage and validation books (letters: Romans-Hebrews)."""
    gap_heldout_books: str = "59-65"
    """gap: held-out books (letters: James-Jude)."""
    control_usage_books: str = "11-17"
    """control: usage and validation books (narrative: 1 Kings-Esther)."""
    control_heldout_books: str = "44"
    """control: held-out book (narrative: Acts)."""
    n_training: int = 60
    """Verses of D_tr(t)."""
    n_usage: int = 100
    """Verses of the target-usage sample."""
    n_validation: int = 60
    """Verses of the validation split (usage books) that chooses the learning rate."""
    n_heldout: int = 150
    """Held-out verses scored per language (each one paired across systems)."""
    pool_per_genre: int = 30
    """Pool verses per genre (any other corpus language; held-out books excluded)."""
    realistic_per_genre: int = 10
    """realistic: target-language verses per genre that is neither the usage's nor D_tr's."""
    budget: int = 60
    """Items each budgeted method selects (the oracle adds as many target-language verses)."""
    epochs_of_largest: float = 1.0
    """Steps = this many passes over the largest training set of a condition ('all')."""
    lr_grid: list[float] = dataclasses.field(default_factory=lambda: [1e-4, 3e-4, 1e-3])
    """Learning rates tried on the validation split (random selection, seed 0)."""

    def __post_init__(self) -> None:
        bad = [c for c in self.conditions if c not in GENRE_CONDITIONS]
        require(not bad, f"Unknown condition(s) {bad}; use {', '.join(GENRE_CONDITIONS)}.")
        _check_methods([*self.methods, *self.side_methods])


@dataclasses.dataclass
class CompassGenresConfig(ExperimentConfig):
    """compass_genres: COMPASS where a real semantic gap between genres exists, and where none
    does (train.max_steps=0 derives the steps from genres.epochs_of_largest)."""

    steps_from_epochs: ClassVar[bool] = True

    encoder: str = "e5-nano"
    """Sentence encoder of the selection."""
    data_seed: int = 0
    """Seed of the drawn training, usage, validation, held-out and pool verses."""
    genres: GenreSettings = dataclasses.field(default_factory=GenreSettings)
    """Conditions, books, sizes, budget, learning-rate grid."""


@dataclasses.dataclass
class ShifConVsLoraConfig(ShifConSetup, ClozeSet, ExperimentConfig):
    """shifcon_vs_lora: ShifCon vs plain LoRA on the same pairs, batches, seeds and steps."""

    english: bool = True
    """Also measure English NLL (shows whether training on other languages harmed it)."""
    lr_grid: list[float] = dataclasses.field(default_factory=list)
    """Learning rates tried for each system on a validation split (seed 0); each system then
    trains at its best. Empty: both use train.lr."""
    ablations: list[str] = bookkeeping(default_factory=list)
    """Also train ShifCon with one part only, at ShifCon's learning rate: 'shift-trained' (the
    shift, no contrastive loss), 'contrastive-only' (no shift) and/or 'fixed-anchors' (ShifCon
    whose contrastive loss does not move the English side)."""
    validation_per_language: int = 100
    """With lr_grid: validation verses per language (train_books verses after the training
    pairs, never the held-out books)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted(set(self.ablations) - set(SHIFCON_ABLATIONS))
        require(not unknown, f"Unknown ablations {unknown}; choose from {list(SHIFCON_ABLATIONS)}.")


@dataclasses.dataclass
class LayerAreaConfig(ShifConSetup, ClozeSet, ExperimentConfig):
    """layer_area: ShifCon trained with the distance curve's band vs a sweep of bands."""

    bands: list[list[int]] = bookkeeping(
        default_factory=lambda: [[1, 3], [7, 9], [10, 12], [13, 15]]
    )
    """The (a, b) sweep compared with the band the distance curve chooses."""
    shift_only: bool = bookkeeping(True)
    """Also score the untrained base model with each band's shift (no seeds)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for band in self.bands:
            require(
                len(band) == 2 and band[0] < band[1],
                f"Each band is [a, b] with a < b; got {band}.",
            )


@dataclasses.dataclass
class EcdaDriftConfig(SelectionData, HeldoutVerses, ExperimentConfig):
    """ecda_drift: COMPASS-ECDA under a usage change at a known window, against no update,
    naive fine-tuning and full retraining (train.max_steps=0: train.epochs over the data)."""

    steps_from_epochs: ClassVar[bool] = True

    stable_books: str = "40-42,44"
    """Books of the usage before the change (narrative: Matthew-Luke, Acts); also the reference
    usage of the deployed version (usage_per_language verses)."""
    drift_books: str = "45-65"
    """Books of the usage after the change (the letters: Romans-Jude)."""
    window: int = 60
    """Queries per monitor window."""
    windows_before: int = 8
    """Stable windows before the change (false alarms are counted on these)."""
    windows_after: int = 4
    """Windows after the change (the detection delay is counted from the first)."""
    penalty: str = "l2sp"
    """ECDA's penalty toward the current version (l2sp, ewc or none)."""
    penalty_lambda: float = 1.0
    """Weight of the penalty."""
    replay_fraction: float = 0.5
    """Share of replayed D_tr examples in ECDA's update."""
    full_steps: int = 0
    """Steps of the full retraining from scratch (0: train.epochs over D_tr + selection, or
    train.max_steps when that is set)."""
    variants: list[str] = bookkeeping(default_factory=lambda: list(ECDA_VARIANTS))
    """ECDA systems run beside plain ECDA, on the same streams: ecda+usage (the update also
    trains on the drifted queries, minus the gate's split) and ecda+lang (COMPASS ranks the
    pool's target-language items first within each cluster)."""
    pool_target_per_language: int = 200
    """Target-language verses in the pool (pool_books; never a held-out, D_tr, reference or
    stream verse: the streams leave them out), which ecda+lang prefers; 0: other languages
    only."""
    settle_rows: int = SMALL_REFERENCE
    """After a promotion, queries the new version's reference settles on before windows are
    tested again (lingualift ecda's settle_rows)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [v for v in self.variants if v not in ECDA_VARIANTS]
        require(not unknown, f"Unknown variants {unknown}; choose from {list(ECDA_VARIANTS)}.")
        require(self.pool_target_per_language >= 0, "pool_target_per_language must be >= 0.")
        require(
            self.pool_target_per_language > 0 or "ecda+lang" not in self.variants,
            "ecda+lang prefers the pool's target-language items; set pool_target_per_language "
            "above 0 or drop ecda+lang from variants.",
        )
        require(self.settle_rows >= 0, "settle_rows must not be negative.")
