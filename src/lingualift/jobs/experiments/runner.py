"""``run_experiment``: dispatch to one experiment, then write the config and the table."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_write_text, check_replaceable
from lingualift.config import save_config
from lingualift.jobs.experiments.config import ExperimentConfig, ShifConSetup
from lingualift.jobs.experiments.registry import EXPERIMENTS, experiment_name
from lingualift.planning import check_training_args
from lingualift.stages import JOB_FILE, Job


def run_experiment(config: ExperimentConfig, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the experiment; returns ``{'results', 'plot', 'table'}``."""
    name = experiment_name(config)
    if config.out_dir is None:
        config = dataclasses.replace(config, out_dir=f"runs/experiments/{name}")
    out = Path(config.run_dir)
    check_replaceable(out, JOB_FILE, overwrite=False, what="experiment output")
    # Does a unit's training fit the device? Refused here, before anything loads (with gradient
    # checkpointing turned on when only that fits).
    verb = "shifcon" if isinstance(config, ShifConSetup) else "train"
    checked = check_training_args(verb, config, config.train, config.lora)
    Job(out, label="experiment").claim()  # never write into a folder that is not ours
    # The saved config reloads as a recipe: lingualift experiment --config <out>/config.yaml
    # (as given: an auto gradient checkpointing is decided again on the machine that reruns it)
    save_config(config, out / "config.yaml", prefix={"experiment": name})
    config = dataclasses.replace(config, train=checked)
    result = EXPERIMENTS[name].run(config, progress=progress)
    table_path = out / "table.md"
    atomic_write_text(table_path, result["table"] + "\n")
    result["table_path"] = table_path
    return result
