"""``lingualift eval``: Global-MMLU / MMLU-ProX, perplexity, long context, or lm-eval tasks."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, config_from_args
from lingualift.cli.verbs import Verb
from lingualift.jobs.eval import EvalConfig


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        config_cls=EvalConfig,
        description="Evaluate a base model, adapters or ShifCon: multiple-choice benchmarks "
        "(Global-MMLU, MMLU-ProX), per-language perplexity, OneRuler-style long context, or any "
        "lm-eval task (backend=lm-eval). Writes lm-eval-shaped results JSON and prints a table.",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.jobs.eval import run_eval

    config = config_from_args(args)
    run_eval(config)
    return 0
