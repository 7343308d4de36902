"""``lingualift report``: several results files -> one per-language table and a heat map."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb


def register(subparsers: Any) -> None:
    parser = add_verb(
        subparsers,
        "report",
        "compare results files per language (table + heat map PNG)",
        run,
        description="Merge results of 'lingualift eval' or lm-eval into one table "
        "(rows: languages, columns: runs) and a heat map.",
    )
    parser.add_argument("results", nargs="+", help="results files, optionally label=path")
    parser.add_argument("--out", "-o", help="write OUT.md and OUT.png")
    parser.add_argument("--metric", help="metric key, e.g. 'acc,none' (default: the first found)")
    parser.add_argument("--task", help="only tasks starting with this name, e.g. global_mmlu_full")


def run(args: argparse.Namespace) -> int:
    from lingualift.evaluation.report import report

    print(report(args.results, args.out, args.metric, args.task))
    if args.out:
        print(f"\nwrote {args.out}.md and {args.out}.png")
    return 0
