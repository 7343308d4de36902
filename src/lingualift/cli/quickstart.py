"""``lingualift quickstart``: the main job end to end on the embedded defaults."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, config_from_args
from lingualift.cli.verbs import Verb
from lingualift.jobs.quickstart import QuickstartConfig


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        config_cls=QuickstartConfig,
        description="For one non-English language: COMPASS selection vs baselines, a LoRA "
        "adapter on training + selection, ShifCon vectors and layer area, and base vs adapter "
        "vs ShifCon on held-out NLL and a cloze set; writes report.md, report.json and plots. "
        "Stages that finished before are skipped, so a rerun is quick.",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.jobs.quickstart import run_quickstart

    report = run_quickstart(config_from_args(args))
    print(report.read_text())
    print(f"report: {report.resolve()}  (plots and report.json beside it)")
    return 0
