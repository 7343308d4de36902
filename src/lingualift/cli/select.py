"""``lingualift select``: COMPASS selection of auxiliary data (and its baselines)."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, config_from_args
from lingualift.cli.verbs import Verb
from lingualift.jobs.select import SelectConfig


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        config_cls=SelectConfig,
        description="Embed target usage, training data and a multilingual pool with one "
        "encoder, cluster them, and select pool items where target usage is under-covered "
        "by training (or a baseline: random, lang-similarity, all). Writes the selection, "
        "report.json, report.png and the cluster profile to out_dir.",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.jobs.select import run_select

    config = config_from_args(args)
    result = run_select(config)
    report = result.report
    print(
        f"{report['method']}: selected {report['n_selected']} of {report['n_pool']} pool items "
        f"({report['spent']:g} {report['unit']}) in {report['n_clusters']} clusters; "
        f"JS(target||training) {report['js_before']:.4f} -> {report['js_after']:.4f} bits"
    )
    top = ", ".join(f"{k} {v}" for k, v in list(report["languages"].items())[:8])
    print(f"languages: {top}")
    state = "reused the finished" if result.reused else "wrote"
    print(f"{state} {result.out_dir}/selection.{config.format}, report.json, report.png")
    return 0
