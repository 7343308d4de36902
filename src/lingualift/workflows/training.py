"""Train-and-store: one language's LoRA adapter trained, written and stored as a version.

The body every training stage shares (the ``train`` job, the quickstart's
adapter, an ECDA update, the experiments' adapters):

- :class:`TrainConfig`: what is trained on what (the ``train`` verb's keys);
- :func:`read_training_data`: the data and the COMPASS selection, read and
  checked before any model loads (:class:`TrainingData`);
- :func:`train_settings`: what a training stage's fingerprint covers;
- :func:`train_and_store`: train from a model, write ``metrics.json``,
  ``loss.png`` and ``config.yaml``, store the adapter with its card
  (:func:`adapter_card`) and held-out set, once per fingerprint, and decide
  whether it becomes current (:func:`should_promote`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from lingualift.adapters.data import (
    HELDOUT_FILE,
    DataSummary,
    Example,
    examples_from_records,
    read_examples,
    read_selection,
    selection_report,
    split_heldout,
    write_examples,
)
from lingualift.adapters.store import AdapterStore, AdapterVersion
from lingualift.atomic import atomic_write_text
from lingualift.config import bookkeeping, save_config, settings_of, to_dict
from lingualift.data.columns import Columns, merge_columns
from lingualift.data.sources import is_corpus_spec, read_source
from lingualift.errors import require
from lingualift.languages import normalize_language
from lingualift.placement import ModelSettings
from lingualift.stages import StageContext
from lingualift.training import LoraSettings, TrainingArgs, process_state


@dataclasses.dataclass
class TrainConfig(ModelSettings):
    """One LoRA training run for one target language (on the base model, precision and
    placement of :class:`~lingualift.placement.ModelSettings`: model, dtype, device,
    attn_implementation, quantization, trust_remote_code)."""

    lang: str = "sw"
    """Target language of the adapter (any ISO 639 code or English name)."""
    data: str | None = None
    """Training data: a JSONL/CSV/TSV/Parquet file, 'hf:<dataset>', or verses of the embedded
    corpus as 'corpus:<lang>[:<books>[:<n>]]' (e.g. 'corpus:sw:nt:2000': 2000 New Testament
    verses drawn with the seed). Optional when a selection is given."""
    data_format: Literal["auto", "text", "prompt_completion", "chat"] = "auto"
    """How rows become examples: plain text (loss on every token), prompt/completion (loss on the
    completion only), chat messages (the tokenizer's chat template, loss on assistant turns), or
    'auto' to pick from the fields of the first row."""
    # The mapping is folded into the *_field keys below, which the fingerprint covers as it
    # always did (so earlier runs are found again); id and lang reach it through the data's
    # fingerprint.
    columns: Columns = bookkeeping(default_factory=Columns)
    """Which columns of 'data' hold what, as in every verb: columns.text, columns.prompt,
    columns.completion, columns.messages, columns.id, columns.lang, columns.default_lang."""
    text_field: str = "text"
    """Short form of columns.text: the column holding the text of plain-text rows."""
    prompt_field: str = "prompt"
    """Short form of columns.prompt (prompt/completion rows)."""
    completion_field: str = "completion"
    """Short form of columns.completion (prompt/completion rows)."""
    messages_field: str = "messages"
    """Short form of columns.messages: a list of {role, content} messages in chat rows."""
    selection: str | None = None
    """A COMPASS selection (JSONL/Parquet of records written by 'lingualift select') mixed into
    the training data as plain text."""
    selection_limit: int | None = None
    """Use at most this many selected records (in file order, i.e. best first)."""
    data_limit: int | None = None
    """Use at most this many rows of 'data' (handy for smoke runs)."""
    lora: LoraSettings = dataclasses.field(default_factory=LoraSettings)
    """The LoRA adapter: rank, alpha, dropout, target modules (ignored when starting from a
    parent version, whose shape is kept)."""
    train: TrainingArgs = dataclasses.field(default_factory=TrainingArgs)
    """Optimisation: lr, schedule, warm-up, steps or epochs, batch, precision, checkpoints, seed."""
    packing: bool = False
    """Concatenate examples into full max_length rows (no padding waste)."""
    eval_fraction: float = 0.05
    """Share of the examples held out for the eval loss (at least one when there are two or more)."""
    eval_every: int = 0
    """Evaluate every this many steps (0: before and after training only)."""
    parent: str | None = None
    """Start from a stored version of this language ('current' or e.g. 'v3') instead of a
    fresh adapter."""
    out_dir: str | None = bookkeeping(None)
    """Run folder for metrics.json and loss.png (default runs/train-<lang>); checkpoints live
    beside it in .<name>.work/ until the run lands."""
    store: str | None = bookkeeping(None)
    """Adapter store root (default $LINGUALIFT_HOME/adapters)."""
    promote: bool | None = bookkeeping(None)
    """Make the new version the language's current one: true, false, or unset (the default):
    only the language's first version becomes current; a later one is stored, and the command
    that promotes it is printed (promotion of a retrained adapter is a decision, e.g. a gate's)."""
    overwrite: bool = bookkeeping(False)
    """Redo a run whose out_dir was made with other settings."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.lang = normalize_language(self.lang)
        self.columns = fold_short_forms(self, TRAIN_SHORT_FORMS)
        require(
            self.data is not None or self.selection is not None,
            "No training data; set data=<file> (or data=corpus:<lang>) and/or selection=<file>.",
        )
        require(
            0 <= self.eval_fraction < 1,
            f"eval_fraction must be in [0, 1), got {self.eval_fraction}.",
        )
        for name in ("data_limit", "selection_limit"):
            value = getattr(self, name)
            require(value is None or value >= 1, f"{name} must be at least 1, got {value}.")
        require(self.eval_every >= 0, f"eval_every must not be negative, got {self.eval_every}.")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir or f"runs/train-{self.lang}")


TRAIN_SHORT_FORMS = {
    "text_field": "text",
    "prompt_field": "prompt",
    "completion_field": "completion",
    "messages_field": "messages",
}
"""train's keys from before the one mapping -> the column they name (kept as short forms)."""


def fold_short_forms(config: TrainConfig, short_forms: dict[str, str]) -> Columns:
    """``config.columns`` with each short form (``text_field=body``) folded in, and each short
    form set to the column it resolves to; a short form and a ``columns.*`` key that name two
    different columns are one sentence."""
    if isinstance(config.columns, dict):
        config.columns = merge_columns(Columns(), config.columns)
    columns = dataclasses.replace(config.columns)
    default = Columns()
    for flat, role in short_forms.items():
        value, mapped = getattr(config, flat), getattr(columns, role)
        if value != getattr(default, role):
            require(
                mapped in (value, getattr(default, role)),
                f"{flat}={value!r} and columns.{role}={mapped!r} disagree; give one of them.",
            )
            setattr(columns, role, value)
        setattr(config, flat, getattr(columns, role))
    return columns


@dataclasses.dataclass
class TrainingData:
    """The examples of a run, read (and checked) before any model is loaded."""

    examples: list[Example]
    summaries: list[DataSummary]
    selection: dict[str, Any] | None
    """The selection's summary and COMPASS report (None without a selection)."""


@dataclasses.dataclass
class StageHooks:
    """What a caller adds to a training stage (a continual update: its penalty, its files)."""

    prepare: Callable[[Any], dict[str, Any]] | None = None
    """``prepare(trainer)`` runs before training (e.g. adds a loss term) and returns what the
    card should say about it."""
    extra_files: Callable[[Path], None] | None = None
    """``extra_files(folder)`` writes more files into the version folder (a reference profile)."""


def read_training_data(config: TrainConfig) -> TrainingData:
    """Read the data and the COMPASS selection named by ``config``."""
    examples: list[Example] = []
    summaries: list[DataSummary] = []
    selection = None
    if config.data is not None:
        if is_corpus_spec(config.data):
            records = read_source(config.data, seed=config.train.seed, role="data")
            found, summary = examples_from_records(records[: config.data_limit], config.data)
        else:
            found, summary = read_examples(
                config.data, config.data_format, config.columns, limit=config.data_limit
            )
        examples.extend(found)
        summaries.append(summary)
    if config.selection is not None:
        found, summary = read_selection(config.selection, config.selection_limit)
        examples.extend(found)
        summaries.append(summary)
        selection = {**dataclasses.asdict(summary), "report": selection_report(summary.path)}
    return TrainingData(examples, summaries, selection)


def train_settings(
    config: TrainConfig, data: TrainingData, parent: AdapterVersion | None
) -> dict[str, Any]:
    """What a training stage's fingerprint covers: the config but where outputs go, the data."""
    return {
        **settings_of(config),
        "data_fingerprints": [s.fingerprint for s in data.summaries],
        "parent": parent.name if parent else None,
    }


def find_parent(store: AdapterStore, config: TrainConfig) -> AdapterVersion | None:
    """The stored version ``config.parent`` names (None to start from a fresh adapter)."""
    if config.parent is None:
        return None
    version = None if config.parent == "current" else config.parent
    store.check_weights(config.lang, version)
    return store.get(config.lang, version)


def should_promote(store: AdapterStore, lang: str, promote: bool | None) -> bool:
    """Whether a new version of ``lang`` becomes current: as asked, else only the first one."""
    if promote is not None:
        return promote
    return not store.versions(lang)


def train_and_store(
    ctx: StageContext,
    config: TrainConfig,
    data: TrainingData,
    model: Any,
    tokenizer: Any,
    store: AdapterStore | None,
    parent: AdapterVersion | None = None,
    progress: bool = True,
    hooks: StageHooks | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The body of a training stage: train from ``model``, write the run outputs, store.

    Checkpoints go to ``ctx.work`` (a rerun resumes them); ``metrics.json``,
    ``loss.png`` and ``config.yaml`` to ``ctx.out``; the adapter to ``store``
    (once per fingerprint) unless ``store`` is None, with the held-out examples
    as ``heldout.jsonl`` beside it (the set a later update's gate scores it on).
    A newly stored version becomes current as :func:`should_promote` decides.
    Returns the trained adapter and the stage result.
    """
    from lingualift.adapters.trainer import LoraTrainer

    hooks = hooks or StageHooks()
    require(tokenizer is not None, "Pass the tokenizer together with the model.")
    train, heldout = split_heldout(data.examples, config.eval_fraction, config.train.seed)
    trainer = LoraTrainer(
        model,
        tokenizer,
        config.train,
        config.lora,
        run_dir=ctx.work,
        init_adapter=parent.path if parent else None,
        base_spec=config.model,
    )
    trainer.load_data(train, heldout, data.summaries, config.packing)
    extra_card = hooks.prepare(trainer) if hooks.prepare is not None else {}
    trained = trainer.fit(eval_every=config.eval_every, progress=progress)
    if not process_state().is_main_process:
        return trained, {}
    keep_tracker_logs(ctx)
    title = f"LoRA adapter for {config.lang}"
    atomic_write_text(ctx.out / "metrics.json", json.dumps(trained.metrics, indent=2))
    trained.plot(ctx.out / "loss.png", title)
    save_config(config, ctx.out / "config.yaml")
    result = _brief(trained.metrics)
    if store is None:
        return trained, result
    version = store.find_run(config.lang, ctx.fingerprint)
    if version is None:
        card = {
            **adapter_card(trained, config, data.selection, parent, ctx.fingerprint),
            **extra_card,
        }

        def write(folder: Path) -> None:
            trained.save(folder)
            trained.plot(folder / "loss.png", title)
            if heldout:
                write_examples(heldout, folder / HELDOUT_FILE)
            if hooks.extra_files is not None:
                hooks.extra_files(folder)

        promote = should_promote(store, config.lang, config.promote)
        version = store.save(config.lang, writer=write, card=card, promote=promote)
    elif config.promote and not version.current:
        version = store.promote(config.lang, version.version)
    return trained, {
        "adapter": version.name,
        "version": version.version,
        "path": str(version.path),
        **result,
    }


def adapter_card(
    trained: Any,
    config: TrainConfig,
    selection: dict[str, Any] | None,
    parent: AdapterVersion | None,
    fingerprint: str,
) -> dict[str, Any]:
    """The card stored beside an adapter (the store adds lang, version and time): base model,
    parent, data and selection fingerprints, settings, metrics, the run and the software."""
    from lingualift.models import base_precision

    return {
        "base_model": trained.base_model,
        # How the base held its weights (dtype, quantization): a QLoRA adapter says it was
        # trained on an nf4/int8 base, and loads unchanged on the unquantized one.
        "base_precision": base_precision(trained.model),
        "parent": parent.name if parent else None,
        "data": [dataclasses.asdict(s) for s in trained.data],
        "selection": selection,
        "config": to_dict(config),
        "metrics": trained.metrics,
        "run": {"fingerprint": fingerprint, "output_dir": str(config.run_dir)},
        "software": software_versions(),
    }


def software_versions() -> dict[str, str]:
    """The versions of the libraries an adapter's numbers depend on."""
    import peft
    import torch
    import transformers

    import lingualift

    return {
        "lingualift": lingualift.__version__,
        "peft": peft.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }


def keep_tracker_logs(ctx: StageContext) -> None:
    """Move the trackers' logs (TensorBoard, MLflow) from the work folder into the run folder,
    which lands with the stage (the work folder is removed then)."""
    logs = ctx.work / "logs"
    if logs.is_dir() and any(logs.iterdir()):
        shutil.copytree(logs, ctx.out / "logs", dirs_exist_ok=True)


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("steps", "epochs", "train_rows", "eval_rows", "eval_loss_before", "eval_loss")
    return {k: metrics.get(k) for k in keys} | {"train_seconds": metrics.get("train_seconds")}
