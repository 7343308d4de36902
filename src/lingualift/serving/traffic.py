"""The traffic-log writer: rows go to rotating segments on a thread, serving never waits.

The row schema and segment naming are :mod:`lingualift.data.traffic` (which the
drift monitor reads with): :func:`~lingualift.data.traffic.traffic_row` builds a
row, segments are written as ``traffic-<UTC start>-<seq>.jsonl.partial`` and
renamed to ``.jsonl`` when closed: when one reaches ``max_bytes``, when it has
been open ``max_seconds``, and on shutdown. Readers
(:func:`~lingualift.data.traffic.read_segments`, the monitor) only ever see
whole segments.

Serving never waits for the disk: :meth:`TrafficLog.write` hands the row to a
writer thread through a bounded queue, and when that queue is full the row is
dropped and counted (:attr:`TrafficLog.dropped`).

What a hard crash (power loss, SIGKILL) can lose: rows still in the queue, and
the open ``.partial`` segment's tail that was not yet flushed to the OS (rows
are flushed after each group the writer takes from the queue, so that is the
last moment's rows; a closed segment is fsynced before its rename). The
``.partial`` file stays behind: its complete lines can be read with
``read_segments(folder, include_partial=True)``, and the next :class:`TrafficLog`
on the folder closes it (its torn last line cut) so the monitor sees it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from lingualift.atomic import path_lock
from lingualift.data.traffic import (
    PARTIAL_SUFFIX,
    SEGMENT_PREFIX,
    closed_name,
    segment_name,
    segment_seq,
    traffic_row,
)
from lingualift.errors import LingualiftError

logger = logging.getLogger(__name__)

_CLOSE = object()


@dataclasses.dataclass
class RequestRecord:
    """What is known about one generation request, filled in as it runs (the server and the
    routing front both keep one); :meth:`row` is its traffic-log row when it ends."""

    request_id: str
    route: str
    """The API path ('/v1/completions'), the label of its latency metric."""
    received: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime.now(dt.UTC))
    started: float = dataclasses.field(default_factory=time.perf_counter)
    model: str | None = None
    text: str | None = None
    """The prompt, for chat the last user message (what routing read)."""
    lang: str | None = None
    lang_detected: bool = False
    lang_confidence: float | None = None
    adapter: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    status: int = 200
    user: str | None = None
    """The end-user id the request carried (OpenAI's ``user``, or ``safety_identifier``)."""

    @property
    def latency_s(self) -> float:
        """Seconds since the request arrived."""
        return time.perf_counter() - self.started

    def row(self, log_text: bool) -> dict[str, Any]:
        return traffic_row(
            request_id=self.request_id,
            received=self.received,
            model=self.model,
            lang=self.lang,
            lang_detected=self.lang_detected,
            lang_confidence=self.lang_confidence,
            adapter=self.adapter,
            text=self.text,
            log_text=log_text,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            latency_ms=self.latency_s * 1000.0,
            status=self.status,
            user=self.user,
        )


class TrafficLog:
    """A writer thread that appends rows to rotating segments (see the module docstring)."""

    def __init__(
        self,
        folder: str | Path,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_seconds: float = 3600.0,
        queue_size: int = 10_000,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.on_drop = on_drop
        self.dropped = 0
        """Rows dropped because the queue was full."""
        self.written = 0
        """Rows written to segments."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # One writer per folder: two would interleave sequence numbers and close each other's
        # segments. The lock is released by the OS if the process dies. Not thread-local:
        # close() runs on another thread (the app's lifespan hands it to a worker), and a
        # thread-local lock would stay held, refusing the next server of this process.
        lock_file = path_lock(self.folder / SEGMENT_PREFIX).lock_file
        self._lock = FileLock(lock_file, timeout=0, thread_local=False)
        try:
            self._lock.acquire()
        except Timeout:
            raise LingualiftError(
                f"Another server writes its traffic log to {self.folder}; give each server its "
                "own log_dir."
            ) from None
        self.recovered = _close_leftovers(self.folder)
        self._seq = max((segment_seq(p) for p in self.folder.iterdir()), default=0)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._handle: Any = None
        self._path: Path | None = None
        self._opened = 0.0
        self._size = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lingualift-traffic", daemon=True)
        self._thread.start()

    def write(self, row: dict[str, Any]) -> bool:
        """Queue a row for the writer; False (and counted) when the queue is full."""
        if self._closed:
            return False
        try:
            self._queue.put_nowait(row)
            return True
        except queue.Full:
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop()
            return False

    def close(self, timeout: float = 30.0) -> None:
        """Write every queued row, close the open segment (rename it) and stop the writer."""
        if self._closed:
            return
        self._closed = True
        try:
            self._queue.put(_CLOSE, timeout=timeout)  # waits for room: the writer keeps draining
            self._thread.join(timeout)
        except queue.Full:
            logger.error("the traffic-log writer did not drain its queue in %.0f s", timeout)
        self._lock.release()

    def __enter__(self) -> TrafficLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            timeout = None
            if self._handle is not None:
                timeout = max(0.0, self._opened + self.max_seconds - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            rows, closing = [], item is _CLOSE
            if item is not None and not closing:
                rows.append(item)
                while len(rows) < 1000:  # take what is waiting, then flush once
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _CLOSE:
                        closing = True
                        break
                    rows.append(more)
            try:
                for row in rows:
                    self._append(row)
                if self._handle is not None:
                    self._handle.flush()
                    if time.monotonic() - self._opened >= self.max_seconds:
                        self._close_segment()
            except OSError:
                logger.exception("writing the traffic log to %s failed", self.folder)
            if closing:
                try:
                    self._close_segment()
                except OSError:
                    logger.exception("closing the traffic log segment failed")
                return

    def _append(self, row: dict[str, Any]) -> None:
        line = (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        if self._handle is None:
            self._open_segment()
        self._handle.write(line)
        self._size += len(line)
        self.written += 1
        if self._size >= self.max_bytes:
            self._close_segment()

    def _open_segment(self) -> None:
        self._seq += 1
        self._path = self.folder / segment_name(dt.datetime.now(dt.UTC), self._seq)
        self._handle = self._path.open("ab")
        self._opened = time.monotonic()
        self._size = 0

    def _close_segment(self) -> None:
        if self._handle is None or self._path is None:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._path, closed_name(self._path))
        self._handle, self._path = None, None


def _close_leftovers(folder: Path) -> int:
    """Close ``.partial`` segments a crashed writer left: cut a torn last line, rename."""
    count = 0
    for path in sorted(folder.glob(f"{SEGMENT_PREFIX}-*{PARTIAL_SUFFIX}")):
        data = path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if not whole:
            path.unlink()
            continue
        if len(whole) != len(data):
            with path.open("r+b") as handle:
                handle.truncate(len(whole))
        os.replace(path, closed_name(path))
        count += 1
    if count:
        logger.warning("closed %d traffic-log segment(s) left open by a crash in %s", count, folder)
    return count
