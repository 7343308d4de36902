"""``run_experiment``: dispatch to one experiment, then write the config and the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_write_text
from lingualift.config import save_config
from lingualift.jobs.experiments.config import ExperimentConfig
from lingualift.stages import Job


def run_experiment(config: ExperimentConfig, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the experiment; returns ``{'results', 'plot', 'table'}``."""
    from lingualift.jobs.experiments import compass, ecda, genres, shifcon

    jobs = {
        "compass_vs_baselines": compass.run_compass_vs_baselines,
        "compass_genres": genres.run_compass_genres,
        "shifcon_vs_lora": shifcon.run_shifcon_vs_lora,
        "layer_area": shifcon.run_layer_area,
        "ecda_drift": ecda.run_ecda_drift,
    }
    out = Path(config.run_dir)
    Job(out, label="experiment").claim()  # never write into a folder that is not ours
    save_config(config, out / "config.yaml")
    result = jobs[config.experiment](config, progress=progress)
    table_path = out / "table.md"
    atomic_write_text(table_path, result["table"] + "\n")
    result["table_path"] = table_path
    return result
