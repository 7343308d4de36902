"""The ``train`` job: one language's LoRA adapter, trained, recorded and stored.

``run_train(TrainConfig(...))`` reads the data (and an optional COMPASS
selection) before any model loads, holds out a split, trains with
:class:`~lingualift.adapters.LoraTrainer` (from a fresh adapter, or from a
stored version with ``parent``), writes ``metrics.json`` and ``loss.png`` to
``out_dir``, and stores the adapter as a new version with its card (base
model, data and selection fingerprints, parent, settings, metrics, software)
through :func:`lingualift.workflows.training.train_and_store`.

Promotion is a decision: the language's first version becomes current; a later
one is stored but not promoted unless ``promote=true`` (``promote=false`` never
promotes), and :attr:`TrainResult.promote_command` is the command that promotes it.

It is one stage of the stage engine: checkpoints (``save_every``) live in
``.<out_dir>.work/`` until the run lands, so an interrupted run resumes
at its last checkpoint when started again with the same settings, a finished
run is not retrained, and a version is never stored twice for one run.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path
from typing import Any

from lingualift.adapters.store import AdapterStore, AdapterVersion
from lingualift.planning import check_training_args
from lingualift.stages import Job, StageContext
from lingualift.training import process_state
from lingualift.workflows.training import (
    TrainConfig,
    find_parent,
    read_training_data,
    train_and_store,
    train_settings,
)

__all__ = ["TrainConfig", "TrainResult", "run_train"]


@dataclasses.dataclass
class TrainResult:
    """What ``run_train`` produced."""

    adapter: AdapterVersion | None
    """The stored version (None on processes other than the main one)."""
    metrics: dict[str, Any]
    run_dir: Path
    reused: bool = False
    """True when an earlier run with the same settings had already trained and stored it."""

    @property
    def promote_command(self) -> str | None:
        """The command that makes the stored version current (None when it already is)."""
        if self.adapter is None or self.adapter.current:
            return None
        store = self.adapter.path.parent.parent
        return (
            f"lingualift adapters promote {self.adapter.lang} v{self.adapter.version} "
            f"store={shlex.quote(str(store))}"
        )


def run_train(config: TrainConfig, model: Any = None, tokenizer: Any = None) -> TrainResult:
    """Train (or resume, or reuse) and store one language adapter: ``lingualift train``."""
    data = read_training_data(config)  # bad data fails before the model loads
    store = AdapterStore(config.store)
    parent = find_parent(store, config)
    if model is None:  # does the run fit the device? (refused here, before anything loads)
        config = dataclasses.replace(
            config, train=check_training_args("train", config, config.train, config.lora)
        )
    state = process_state()  # one of several processes under `accelerate launch`
    job = Job(
        config.run_dir.parent,
        label="train",
        overwrite=config.overwrite,
        main_process=state.is_main_process,
        barrier=state.wait_for_everyone,
    )
    out: dict[str, Any] = {}

    def stage(ctx: StageContext) -> dict[str, Any]:
        nonlocal model, tokenizer
        if model is None:
            from lingualift.models import load_causal_lm

            model, tokenizer = load_causal_lm(config.model_settings())
        trained, result = train_and_store(ctx, config, data, model, tokenizer, store, parent)
        out["metrics"] = trained.metrics
        return result

    settings = train_settings(config, data, parent)
    found = job.run("train", settings, stage, path=config.run_dir, describe="training")
    if not state.is_main_process:
        return TrainResult(None, out.get("metrics", {}), config.run_dir)
    metrics = out.get("metrics") or json.loads((config.run_dir / "metrics.json").read_text())
    version = store.get(config.lang, found.result["version"])
    if config.promote and not version.current:  # a finished run, promoted when asked again
        version = store.promote(config.lang, version.version)
    return TrainResult(version, metrics, config.run_dir, reused=found.reused)
