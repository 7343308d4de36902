"""``lingualift experiment``: run one of the experiments of recipes/experiments/ from a recipe."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from lingualift.cli._common import add_verb, config_from_args
from lingualift.cli.verbs import Verb
from lingualift.config import describe
from lingualift.jobs.experiments.config import ExperimentConfig
from lingualift.jobs.experiments.registry import EXPERIMENTS


def keys_help() -> str:
    """The keys every experiment shares, then each experiment's own."""
    shared = [f.name for f in dataclasses.fields(ExperimentConfig)]
    parts = [
        "config keys (set in a recipe or as key=value); experiment=<name> picks the experiment:",
        "",
        "every experiment:",
        describe(ExperimentConfig),
    ]
    for name, experiment in EXPERIMENTS.items():
        parts += ["", f"experiment={name} (also):", describe(experiment.config, omit=shared)]
    return "\n".join(parts)


def register(subparsers: Any, verb: Verb) -> None:
    parser = add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        description="Train and score every system of an experiment over several seeds "
        f"({', '.join(EXPERIMENTS)}); finished runs are kept, so a rerun resumes. "
        "Writes results.json, results.png and table.md to out_dir.",
        epilog=keys_help(),
    )
    parser.add_argument("--config", "-c", metavar="RECIPE.yaml", help="YAML recipe to start from")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="override a config key (dots for nesting)"
    )
    parser.set_defaults(config_loader=load)


def load(args: argparse.Namespace) -> ExperimentConfig:
    """The experiment's config: the recipe's experiment: names its class."""
    from lingualift.jobs.experiments import load_experiment

    return load_experiment(args.config, args.overrides)


def run(args: argparse.Namespace) -> int:
    from lingualift.jobs.experiments import run_experiment

    result = run_experiment(config_from_args(args))
    print(result["table"])
    print(f"wrote {result['results']}, {result['plot']}, {result['table_path']}")
    return 0
