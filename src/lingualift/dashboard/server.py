"""``lingualift dashboard``: a :class:`DashboardConfig` in, the dashboard served until Ctrl-C.

:func:`build_dashboard` checks the config and builds the app (tests serve it
from a thread with :class:`lingualift.serving.server.ServerThread`);
:func:`run_dashboard` binds the socket first (a busy port is one sentence, at
once) and runs it under uvicorn, as ``lingualift serve`` does.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lingualift.adapters.store import AdapterStore
from lingualift.dashboard.actions import Actions
from lingualift.dashboard.config import DashboardConfig
from lingualift.dashboard.views import LoopReader, LoopSources

if TYPE_CHECKING:
    from fastapi import FastAPI


def build_dashboard(config: DashboardConfig) -> FastAPI:
    """The app for ``config`` (refuses, in one sentence, a store that is not there and actions
    without a key)."""
    from lingualift.dashboard.app import create_dashboard_app

    config.check()
    sources = LoopSources(
        store=config.store_root(),
        traffic=config.traffic_path(),
        monitor=Path(config.monitor) if config.monitor else None,
        langs=config.langs,
    )
    reader = LoopReader(sources, max_buckets=config.max_buckets)
    actions = None
    if config.allow_actions:
        key = config.resolved_api_key()
        assert key  # config.check() refused actions without one
        actions = Actions(AdapterStore(sources.store), key, config.actions_path())
    return create_dashboard_app(reader, actions=actions, refresh_s=config.refresh_s)


def run_dashboard(config: DashboardConfig) -> int:
    """Serve the dashboard until Ctrl-C or SIGTERM; returns the exit code."""
    from lingualift.serving.server import bind_socket, run_app, socket_url

    logging.getLogger("lingualift.dashboard").setLevel(config.log_level.upper())
    app = build_dashboard(config)
    sock = bind_socket(config.host, config.port)
    mode = (
        f"rollback enabled (logged to {config.actions_path()})"
        if config.allow_actions
        else "read-only"
    )
    print(f"dashboard of {config.store_root()} on {socket_url(sock)} ({mode})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after shutting down
        run_app(app, sock, config.log_level)
    print("dashboard stopped", flush=True)
    return 0
