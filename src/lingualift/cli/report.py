"""``lingualift report``: several results files -> one per-language table and a heat map."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from lingualift.cli._common import Flag, add_verb, config_from_args
from lingualift.cli.verbs import Verb
from lingualift.errors import require


@dataclasses.dataclass
class ReportConfig:
    """Settings of ``lingualift report``."""

    results: list[str] = dataclasses.field(default_factory=list)
    """Results files, optionally label=path (also the command's bare words; a label that is a
    key of this verb, e.g. out, is read as that key)."""
    out: str | None = None
    """Write OUT.md and OUT.png (default: print the table only)."""
    metric: str | None = None
    """Metric key, e.g. 'acc,none' (default: the first found)."""
    task: str | None = None
    """Only tasks whose name starts with this, e.g. global_mmlu_full."""

    def __post_init__(self) -> None:
        require(self.results, "Name at least one results file, e.g. 'lingualift report a.json'.")


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        config_cls=ReportConfig,
        description="Merge results of 'lingualift eval' or lm-eval into one table "
        "(rows: languages, columns: runs) and a heat map.",
        flags=[
            Flag(("--out", "-o"), "out"),
            Flag(("--metric",), "metric"),
            Flag(("--task",), "task"),
        ],
        positional="results",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.evaluation.report import report

    config = config_from_args(args)
    print(report(config.results, config.out, config.metric, config.task))
    if config.out:
        print(f"\nwrote {config.out}.md and {config.out}.png")
    return 0
