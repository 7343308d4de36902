"""``lingualift dashboard``: the loop on one page (store, traffic log, monitor), read live."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, config_from_args
from lingualift.cli.verbs import Verb
from lingualift.dashboard.config import DashboardConfig


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        DashboardConfig,
        description="A local web page of the ECDA loop, re-read from its files on every load: per "
        "language the current version and its lineage with every gate decision and its evidence, "
        "requests per adapter over time from the traffic log, every monitored window's statistics "
        "against their thresholds with the clusters that grew. Read-only unless started with "
        "allow_actions=true and an API key (api_key= or LINGUALIFT_DASHBOARD_API_KEY), which "
        "offers rollback.",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.dashboard.server import run_dashboard

    return run_dashboard(config_from_args(args))
