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
from pathlib import Path
from typing import Any, Literal

from lingualift.atomic import atomic_write_text
from lingualift.config import bookkeeping, save_config, settings_of, to_dict
from lingualift.errors import require
from lingualift.languages import normalize_language
from lingualift.placement import ModelSettings
from lingualift.planning import check_training_args
from lingualift.shifcon.loss import ShifConObjective
from lingualift.stages import Job, StageContext
from lingualift.training import LoraSettings, TrainingArgs
from lingualift.workflows.training import keep_tracker_logs


def _shifcon_training_defaults() -> TrainingArgs:
    # The published setting: lr 1e-5, cosine, one epoch; 3% warm-up is ours.
    return TrainingArgs(lr=1e-5, warmup_steps=0.03, max_length=128, save_every=50)


@dataclasses.dataclass
class ShifConTrainConfig(ModelSettings):
    """Train with ``L = alpha * L_gen + beta * L_con`` (ShifCon) or plain LoRA (shift off, beta 0),
    on a base held as dtype, device, attn_implementation and quantization say (QLoRA with nf4)."""

    model: str | None = None
    """Base model; default: the one the vectors were computed on."""
    out_dir: str = bookkeeping("runs/shifcon-train")
    """Output folder: ``adapter/`` (or ``model/``), ``shifcon/``, ``log.jsonl``, ``metrics.json``."""
    shifcon: str = "runs/shifcon"
    """ShifCon folder (vectors + layer area) from ``vectors`` and ``layers``."""
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
        super().__post_init__()
        require(self.per_language >= 1, "per_language must be at least 1.")
        require(
            self.method == "lora" or self.quantization == "none",
            "method=full trains every weight, which a quantized base cannot hold; use "
            "method=lora (QLoRA) or quantization=none.",
        )


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
        from lingualift.shifcon.corpus import corpus_pairs

        pairs = corpus_pairs(langs, config.books, config.per_language, dominant)
    require(pairs, "No training pairs; widen books/per_language or check the data.")
    out = Path(config.out_dir)
    settings = {
        **settings_of(config),
        "pairs": pairs_digest(pairs),
        "area": [shifcon.a, shifcon.b],
        "model": model_spec,
    }
    model_settings = config.model_settings(model_spec)
    # Does the run fit the device? Refused here, before anything loads. (Full fine-tuning is
    # planned as LoRA: a lower bound.)
    args = check_training_args(
        "shifcon", model_settings, config.train, config.lora if config.method == "lora" else None
    )

    def train(ctx: StageContext) -> dict[str, Any]:
        from lingualift.adapters.trainer import plot_losses
        from lingualift.models import base_precision, load_causal_lm
        from lingualift.shifcon.trainer import ShifConTrainer

        model, tokenizer = load_causal_lm(model_settings)
        trainer = ShifConTrainer(
            model,
            tokenizer,
            shifcon,
            pairs,
            args,
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
            "base_precision": base_precision(trainer.model),
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
