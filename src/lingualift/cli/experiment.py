"""``lingualift experiment``: run one of the experiments of recipes/experiments/ from a recipe."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, config_from_args
from lingualift.jobs.experiments.config import EXPERIMENTS, ExperimentConfig


def register(subparsers: Any) -> None:
    add_verb(
        subparsers,
        "experiment",
        "run an experiment that tests a method's claim (recipes/experiments/*.yaml)",
        run,
        config_cls=ExperimentConfig,
        description="Train and score every system of an experiment over several seeds "
        f"({', '.join(EXPERIMENTS)}); finished runs are kept, so a rerun resumes. "
        "Writes results.json, results.png and table.md to out_dir.",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.jobs.experiments import run_experiment

    config = config_from_args(args)
    result = run_experiment(config)
    print(result["table"])
    print(f"wrote {result['results']}, {result['plot']}, {result['table_path']}")
    return 0
