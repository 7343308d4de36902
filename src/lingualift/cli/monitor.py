"""``lingualift monitor``: test windows of production queries against each version's reference."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, config_from_args, sigterm_requests_stop
from lingualift.cli.verbs import Verb
from lingualift.jobs.monitor import MonitorConfig


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        config_cls=MonitorConfig,
        description="Read a traffic log (file, folder of closed segments, or - for stdin), route "
        "queries by language, cut windows (by count or time) and test each against the reference "
        "profile of the language's current adapter version: JS on cluster histograms (bootstrap), "
        "RBF MMD (permutations), novel share (beta-binomial), combined by Holm-Bonferroni at "
        "alpha. Writes drift.jsonl, drift.png and summary.json to out_dir and resumes where it "
        "stopped. build_reference=<usage file> builds a version's reference profile first. "
        "follow=true keeps polling a log folder until max_polls, Ctrl-C or SIGTERM; windows go "
        "to the trackers of report_to and, with metrics_port, to a Prometheus endpoint.",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.jobs.monitor import run_monitor

    config = config_from_args(args)
    with sigterm_requests_stop() as stop:  # a supervisor's SIGTERM stops between two polls
        result = run_monitor(config, stop=stop)
    summary = result.summary
    if "languages" not in summary:
        ref = summary["reference"]
        print(f"reference of {ref['version']} written ({ref['n_clusters']} clusters)")
        return 0
    for lang, info in summary["languages"].items():
        print(
            f"{lang}: {info['windows']} windows, {info['drift']} with drift "
            f"(reference {info['reference']}, {info['queries']} queries)"
        )
    for note in summary["notes"]:
        print(f"note: {note}")
    print(f"wrote {result.out_dir}/drift.jsonl, drift.png, summary.json")
    return 0
