"""``lingualift cloze``: build a cloze verse-completion multiple-choice set from held-out text."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, config_from_args
from lingualift.cli.verbs import Verb
from lingualift.jobs.eval import ClozeConfig


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        config_cls=ClozeConfig,
        description="Build a cloze verse-completion set from the embedded corpus: question = the "
        "first part of a verse, options = its true ending and 3 same-book endings of similar "
        "length. The file is Global-MMLU shaped: score it with "
        "'lingualift eval task=global-mmlu data=<file>'.",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.jobs.eval import run_cloze

    rows, path = run_cloze(config_from_args(args))
    print(f"wrote {len(rows)} {rows[0]['lang']} cloze questions to {path}")
    return 0
