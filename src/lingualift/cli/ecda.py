"""``lingualift ecda``: keep language adapters fresh under drift (monitor, select, update, gate)."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, config_from_args, sigterm_requests_stop
from lingualift.cli.verbs import Verb
from lingualift.jobs.ecda import EcdaConfig


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        config_cls=EcdaConfig,
        description="COMPASS-ECDA for one or more languages: monitor production queries (a log "
        "file, a folder of segments, or -), and when windows drift select pool data for the "
        "new usage with COMPASS, train the next version from the current one on the selection "
        "plus replay with an L2-SP or EWC penalty, score it against the current version on the "
        "old and new held-out sets, and promote it or keep the current one (recorded in the "
        "store's history). follow=true keeps polling a log folder until max_polls, Ctrl-C or "
        "SIGTERM. Every step is a resumable stage; 'lingualift adapters rollback <lang>' undoes "
        "a promotion.",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.jobs.ecda import run_ecda

    config = config_from_args(args)
    with sigterm_requests_stop() as stop:  # a supervisor's SIGTERM stops between two polls
        result = run_ecda(config, stop=stop)
    for lang, info in result.summary["languages"].items():
        settling = info.get("settling")
        print(
            f"{lang}: {info['windows']} windows, {info['drift']} with drift; current reference "
            f"{info['reference']}"
            + (
                f" (settling: {settling['queries']} of {settling['rows']} queries)"
                if settling
                else ""
            )
        )
    for update in result.updates:
        print(
            f"update {update['id']}: {update['status']}"
            + (
                f", current {update.get('current')} ({update.get('reason')})"
                if update["status"] != "pending"
                else ""
            )
        )
    for note in result.summary["notes"]:
        print(f"note: {note}")
    print(
        f"wrote {result.out_dir}/monitor/drift.jsonl, drift.png; updates in {result.out_dir}/updates"
    )
    return 0
