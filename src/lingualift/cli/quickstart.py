"""``lingualift quickstart``: the first end-to-end job on the embedded defaults."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lingualift.cli._common import add_verb, config_from_args
from lingualift.quickstart import QuickstartConfig


def register(subparsers: Any) -> None:
    add_verb(subparsers, "quickstart", "run the first end-to-end job on the embedded defaults",
             run, config_cls=QuickstartConfig)


def run(args: argparse.Namespace) -> int:
    from lingualift.quickstart import run_quickstart

    report = run_quickstart(config_from_args(args))
    print(json.dumps(json.loads(report.read_text()), indent=2, ensure_ascii=False))
    print(f"report written to {report}")
    return 0
