"""Watching a traffic log over time: read it once or follow it, and say who sees what it finds.

``lingualift monitor`` and ``lingualift ecda`` share :class:`WatchSettings`
(``follow``, ``poll_seconds``, ``max_polls``, the experiment trackers of
:class:`~lingualift.tracking.TrackerSettings`, and a Prometheus endpoint on
``metrics_port``) and :func:`poll_repeatedly`, the one loop that reads the log
again every ``poll_seconds`` until it is told to stop.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from lingualift.config import bookkeeping
from lingualift.errors import require
from lingualift.tracking import TrackerSettings


@dataclasses.dataclass
class WatchSettings(TrackerSettings):
    """How a job over a traffic log keeps reading it, and where it reports what it finds."""

    follow: bool = bookkeeping(False)
    """Keep following the log (a folder of segments) instead of reading it once."""
    poll_seconds: float = bookkeeping(60.0)
    """Seconds between two reads of the log when following it."""
    max_polls: int | None = bookkeeping(None)
    """Stop following after this many reads (None: until Ctrl-C or SIGTERM)."""
    metrics_port: int | None = bookkeeping(None)
    """Serve Prometheus metrics on this port while the job runs (http://metrics_host:port/
    metrics: per language the last p-values, windows, alarms, updates, promotions, the
    current version; skipped rows by reason); None: off, 0: any free port (printed)."""
    metrics_host: str = bookkeeping("127.0.0.1")
    """Address the metrics endpoint listens on; 0.0.0.0 lets a Prometheus on another host
    scrape it."""

    def __post_init__(self) -> None:
        require(self.poll_seconds >= 0, "poll_seconds must not be negative.")
        require(
            self.max_polls is None or self.max_polls >= 1,
            f"max_polls must be at least 1 (or null: until stopped), got {self.max_polls}.",
        )
        require(
            self.metrics_port is None or 0 <= self.metrics_port <= 65535,
            f"metrics_port must be a port number (0: any free one), got {self.metrics_port}.",
        )
        super().__post_init__()


def poll_repeatedly(
    read: Callable[[], None],
    *,
    follow: bool = False,
    poll_seconds: float = 60.0,
    max_polls: int | None = None,
    stop: threading.Event | None = None,
) -> bool:
    """Call ``read`` once or, with ``follow``, again every ``poll_seconds``.

    Following ends after ``max_polls`` reads, when ``stop`` is set (seen between
    two reads, so a read is never cut short) or on Ctrl-C while waiting for the
    next read. Returns True when it was stopped (``stop`` or Ctrl-C), False when
    it ran out of reads: a caller says "stopped following" only for the former.
    """
    waiting = stop or threading.Event()
    polls = 0
    while True:
        read()
        polls += 1
        if not follow or (max_polls is not None and polls >= max_polls):
            return False
        try:
            if waiting.wait(poll_seconds):
                return True
        except KeyboardInterrupt:  # Ctrl-C between polls: the documented way to stop following
            return True
