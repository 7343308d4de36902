"""``lingualift select``: COMPASS selection of auxiliary data (and its baselines)."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, config_from_args
from lingualift.compass.pipeline import SelectConfig


def register(subparsers: Any) -> None:
    add_verb(
        subparsers,
        "select",
        "choose auxiliary data that fills the target language's semantic gaps (COMPASS)",
        run,
        config_cls=SelectConfig,
        description="Embed target usage, training data and a multilingual pool with one "
        "encoder, cluster them, and select pool items where target usage is under-covered "
        "by training (or a baseline: random, lang-similarity, all). Writes the selection, "
        "report.json and report.png to out_dir.",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.compass.pipeline import run_select

    config = config_from_args(args)
    out = run_select(config)
    import json

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    print(
        f"{report['method']}: selected {report['n_selected']} of {report['n_pool']} pool items "
        f"({report['spent']:g} {report['unit']}) in {report['n_clusters']} clusters; "
        f"JS(target||training) {report['js_before']:.4f} -> {report['js_after']:.4f} bits"
    )
    top = ", ".join(f"{k} {v}" for k, v in list(report["languages"].items())[:8])
    print(f"languages: {top}")
    print(f"wrote {out}/selection.{config.format}, report.json, report.png")
    return 0
