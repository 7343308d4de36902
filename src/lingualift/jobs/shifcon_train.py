"""The ShifCon training job: ``lingualift shifcon train``.

Trains LoRA (or every parameter) with ``L = alpha * L_gen + beta * L_con``
through the shifted forward pass (:class:`~lingualift.shifcon.trainer.ShifConTrainer`),
or the plain-LoRA baseline with the shift off and ``beta = 0``, on parallel
pairs of the embedded corpus or a records file. One stage of the stage engine:
checkpoints survive a crash in ``.<out>.work/``, a finished run is reused, and
with ``store`` the adapter becomes a version of each trained language.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from lingualift.atomic import atomic_write_text
from lingualift.config import bookkeeping, save_config, settings_of, to_dict
from lingualift.errors import require
from lingualift.languages import normalize_language
from lingualift.shifcon.loss import ShifConObjective
from lingualift.stages import Job, StageContext
from lingualift.training import LoraSettings, TrainingArgs


def _shifcon_training_defaults() -> TrainingArgs:
    # The published setting: lr 1e-5, cosine, one epoch; 3% warm-up is ours.
    return TrainingArgs(lr=1e-5, warmup_steps=0.03, max_length=128, save_every=50)


@dataclasses.dataclass
class ShifConTrainConfig:
    """Train with ``L = alpha * L_gen + beta * L_con`` (ShifCon) or plain LoRA (shift off, beta 0)."""

    out_dir: str = bookkeeping("runs/shifcon-train")
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
    """Pairs per language (the first ones of the books)."""
    method: Literal["lora", "full"] = "lora"
    """LoRA adapters (PEFT, all linear layers) or full fine-tuning."""
    lora: LoraSettings = dataclasses.field(default_factory=LoraSettings)
    """The LoRA adapter (published: alpha = 2r, all linear layers)."""
    objective: ShifConObjective = dataclasses.field(default_factory=ShifConObjective)
    """The loss: alpha (published 0.5), beta (2.0), tau (0.05, ours), shift (true)."""
    train: TrainingArgs = dataclasses.field(default_factory=_shifcon_training_defaults)
    """Optimisation (published: lr 1e-5, cosine, one epoch; batches of one language)."""
    store: str | None = bookkeeping(None)
    """Also store the adapter in this adapter store, as a version of each trained language."""
    promote: bool = bookkeeping(False)
    """Make the stored versions current (with ``store``)."""
    overwrite: bool = bookkeeping(False)
    """Redo a run whose out_dir was made with other settings."""

    def __post_init__(self) -> None:
        require(self.per_language >= 1, "per_language must be at least 1.")


def corpus_pairs(langs: Sequence[str], books: str, per_language: int, dominant: str = "en"):
    """ShifCon pairs from the embedded corpus: each language's verse and its dominant parallel."""
    from lingualift.data import ParallelCorpus
    from lingualift.shifcon.trainer import Pair

    corpus = ParallelCorpus()
    return [
        Pair(target.lang, target.text, source.text)
        for lang in langs
        for source, target in corpus.parallel(dominant, lang, books, limit=per_language)
    ]


def run_shifcon_train(config: ShifConTrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train (resuming from a checkpoint of the same settings) and write the outputs."""
    from lingualift.shifcon.core import ShifCon
    from lingualift.shifcon.trainer import pairs_digest, pairs_from_records

    shifcon = ShifCon.load(config.shifcon)
    model_spec = config.model or shifcon.base_model
    dominant = shifcon.dominant
    if config.langs:
        langs = [normalize_language(x) for x in config.langs]
        for lang in langs:
            shifcon.vectors.vector(lang)  # a language without a vector fails here, clearly
    else:
        langs = [x for x in shifcon.languages if x != dominant]
    require(
        dominant not in langs, f"Train on non-dominant languages; drop {dominant!r} from langs."
    )
    if config.data:
        from lingualift.data.sources import read_source

        records = read_source(config.data, role="training pairs")
        pairs = [p for p in pairs_from_records(records, dominant) if p.lang in langs]
        for pair in pairs:
            shifcon.vectors.vector(pair.lang)
    else:
        pairs = corpus_pairs(langs, config.books, config.per_language, dominant)
    require(pairs, "No training pairs; widen books/per_language or check the data.")
    out = Path(config.out_dir)
    settings = {
        **settings_of(config),
        "pairs": pairs_digest(pairs),
        "area": [shifcon.a, shifcon.b],
        "model": model_spec,
    }

    def train(ctx: StageContext) -> dict[str, Any]:
        from lingualift.adapters.trainer import plot_losses
        from lingualift.jobs.train import keep_tracker_logs
        from lingualift.models import load_causal_lm
        from lingualift.shifcon.trainer import ShifConTrainer

        model, tokenizer = load_causal_lm(model_spec)
        trainer = ShifConTrainer(
            model,
            tokenizer,
            shifcon,
            pairs,
            config.train,
            objective=config.objective,
            lora=config.lora if config.method == "lora" else None,
            run_dir=ctx.work,
        )
        metrics = trainer.train(progress=progress)
        metrics.update(
            method=config.method,
            **to_dict(config.objective),
            a=shifcon.a,
            b=shifcon.b,
            base_model=model_spec,
        )
        target = ctx.out / ("adapter" if config.method == "lora" else "model")
        trainer.model.save_pretrained(str(target))
        keep_tracker_logs(ctx)
        # The loss curve travels with the weights (and into the store's version folder).
        plot_losses(trainer.log, [], target / "loss.png", f"ShifCon ({config.method})")
        if config.method == "full":
            tokenizer.save_pretrained(str(target))
        else:
            from lingualift.adapters.portable import stamp_adapter
            from lingualift.portable import base_identity

            stamp_adapter(target, base_identity(model_spec))
        from lingualift.adapters.store import base_model_signature

        card = {
            "base_model": base_model_signature(trainer.model, model_spec),
            "method": "shifcon",
            "languages": metrics["languages"],
            "shifcon": {"a": shifcon.a, "b": shifcon.b, "folder": "../shifcon"},
            "data": {"pairs": len(pairs), "fingerprint": pairs_digest(pairs)},
            "config": to_dict(config),
            "metrics": metrics,
        }
        atomic_write_text(target / "card.json", json.dumps(card, indent=2, default=str))
        shifcon.save(ctx.out / "shifcon")
        save_config(config, ctx.out / "config.yaml")
        atomic_write_text(ctx.out / "log.jsonl", "".join(json.dumps(e) + "\n" for e in trainer.log))
        atomic_write_text(ctx.out / "metrics.json", json.dumps(metrics, indent=2))
        return metrics

    stage = Job(out.parent, label="shifcon train", overwrite=config.overwrite).run(
        "train", settings, train, path=out, describe="ShifCon training"
    )
    metrics = dict(stage.result)
    if config.store and config.method == "lora":
        metrics["stored"] = _store_shifcon_adapter(config, out, metrics, stage.fingerprint)
    return metrics


def _store_shifcon_adapter(
    config: ShifConTrainConfig, out: Path, metrics: dict[str, Any], fingerprint: str
) -> list[str]:
    """One store version per trained language (the same weights), once per run."""
    from lingualift.adapters.store import AdapterStore

    store = AdapterStore(config.store)
    card = json.loads((out / "adapter" / "card.json").read_text(encoding="utf-8"))
    card["run"] = {"fingerprint": fingerprint, "output_dir": str(out)}
    card["shifcon"]["folder"] = str((out / "shifcon").resolve())
    names = []
    for lang in metrics["languages"]:
        version = store.find_run(lang, fingerprint) or store.save(
            lang, source=out / "adapter", card=card, promote=config.promote
        )
        names.append(version.name)
    return names
