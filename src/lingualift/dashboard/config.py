"""``DashboardConfig``: what ``lingualift dashboard`` reads, where it listens, whether it may act.

Kept free of the web stack so that ``lingualift --help`` stays fast; the app is
:mod:`lingualift.dashboard.app`, the running server :mod:`lingualift.dashboard.server`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Literal

from lingualift.errors import LingualiftError, require
from lingualift.paths import lingualift_home

API_KEY_ENV = "LINGUALIFT_DASHBOARD_API_KEY"
"""The environment variable that holds the dashboard's key when ``api_key`` is not given."""
ACTIONS_LOG = "dashboard-actions.jsonl"
"""The actions log's name in the store's root (the default ``actions_log``)."""


@dataclasses.dataclass
class DashboardConfig:
    """A local web page of the ECDA loop: versions and decisions, traffic, monitored windows."""

    store: str | None = None
    """Adapter store root (default $LINGUALIFT_HOME/adapters): versions, cards, history.jsonl."""
    traffic: str | None = None
    """The server's traffic-log folder (its log_dir) or one log file; default
    $LINGUALIFT_HOME/traffic, the server's default."""
    monitor: str | None = None
    """The out_dir of 'lingualift ecda' (monitor/ and loop.json inside) or of 'lingualift
    monitor' (drift.jsonl inside); unset: no windows are shown."""
    langs: list[str] | None = None
    """Only these languages (default: every language of the store and of the monitor)."""
    host: str = "127.0.0.1"
    """Interface to bind; only this machine can connect unless you give another (e.g. 0.0.0.0)."""
    port: int = 8050
    """TCP port to listen on (0 picks a free one)."""
    refresh_s: float = 15.0
    """The page reloads itself this often (seconds; 0: never), re-reading every file."""
    max_buckets: int = 60
    """Most bars of a traffic chart (the bucket width is rounded to 1 s ... 7 days to fit)."""
    allow_actions: bool = False
    """Offer rollback on the page (needs an API key); default: read-only."""
    api_key: str | None = None
    """Key an action must carry; default: the LINGUALIFT_DASHBOARD_API_KEY environment variable."""
    actions_log: str | None = None
    """Where each action is logged (JSON Lines); default <store>/dashboard-actions.jsonl."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level of the dashboard and uvicorn."""

    def __post_init__(self) -> None:
        require(0 <= self.port <= 65535, f"port must be in 0..65535, got {self.port}.")
        require(self.refresh_s >= 0, f"refresh_s must not be negative, got {self.refresh_s}.")
        require(self.max_buckets >= 2, f"max_buckets must be at least 2, got {self.max_buckets}.")

    def store_root(self) -> Path:
        return Path(self.store) if self.store else lingualift_home() / "adapters"

    def traffic_path(self) -> Path:
        return Path(self.traffic) if self.traffic else lingualift_home() / "traffic"

    def actions_path(self) -> Path:
        return Path(self.actions_log) if self.actions_log else self.store_root() / ACTIONS_LOG

    def resolved_api_key(self) -> str | None:
        """The configured key, else $LINGUALIFT_DASHBOARD_API_KEY, else None."""
        return self.api_key or os.environ.get(API_KEY_ENV) or None

    def check(self) -> None:
        """Refuse, in one sentence, what cannot work (before a socket is bound)."""
        if not self.store_root().is_dir():
            raise LingualiftError(
                f"The adapter store {self.store_root()} does not exist; point store= at the store "
                "that 'lingualift serve' and 'lingualift ecda' use."
            )
        if self.allow_actions and not self.resolved_api_key():
            raise LingualiftError(
                f"allow_actions=true needs an API key; set api_key=<secret> or {API_KEY_ENV}, "
                "or leave the dashboard read-only."
            )
