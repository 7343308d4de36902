"""The traffic log: one JSON object per request, in segments the drift monitor reads.

Row schema (DESIGN.md, "Serving"): ``id``, ``ts`` (UTC, ISO 8601), ``model``
(as requested), ``lang``, ``lang_detected``, ``lang_confidence``, ``adapter``
('sw/v3', or null for the base model), ``text`` (the prompt; for chat the last
user message; null when text logging is off), ``text_sha1``,
``prompt_tokens``, ``completion_tokens``, ``latency_ms``, ``status``.

Segments are JSON Lines files named ``traffic-<UTC start>-<seq>.jsonl``
(``traffic-20261203T110501Z-000001.jsonl``), so names sort in time order. A
segment is written as ``<name>.jsonl.partial`` and renamed to ``<name>.jsonl``
when it is closed: when it reaches ``max_bytes``, when it has been open
``max_seconds``, and on shutdown. Readers (:func:`read_segments`) only ever see
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

import datetime as dt
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import Timeout

from lingualift.atomic import path_lock
from lingualift.errors import LingualiftError

logger = logging.getLogger(__name__)

PREFIX = "traffic"
CLOSED_SUFFIX = ".jsonl"
PARTIAL_SUFFIX = ".jsonl.partial"
_NAME = re.compile(rf"^{PREFIX}-(\d{{8}}T\d{{6}}Z)-(\d+)\.jsonl(\.partial)?$")
_CLOSE = object()

ROW_FIELDS = (
    "id",
    "ts",
    "model",
    "lang",
    "lang_detected",
    "lang_confidence",
    "adapter",
    "text",
    "text_sha1",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "status",
)


def traffic_row(
    *,
    request_id: str,
    received: dt.datetime,
    model: str | None,
    lang: str | None,
    lang_detected: bool,
    lang_confidence: float | None,
    adapter: str | None,
    text: str | None,
    log_text: bool,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    latency_ms: float,
    status: int,
) -> dict[str, Any]:
    """One log row in the schema's field order (``text`` dropped unless ``log_text``)."""
    return {
        "id": request_id,
        "ts": received.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "model": model,
        "lang": lang,
        "lang_detected": lang_detected,
        "lang_confidence": None if lang_confidence is None else round(lang_confidence, 4),
        "adapter": adapter,
        "text": text if log_text else None,
        "text_sha1": hashlib.sha1(text.encode("utf-8")).hexdigest() if text is not None else None,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "latency_ms": round(latency_ms, 2),
        "status": status,
    }


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
        # segments. The lock is released by the OS if the process dies.
        self._lock = path_lock(self.folder / PREFIX, timeout=0)
        try:
            self._lock.acquire()
        except Timeout:
            raise LingualiftError(
                f"Another server writes its traffic log to {self.folder}; give each server its "
                "own log_dir."
            ) from None
        self.recovered = _close_leftovers(self.folder)
        self._seq = max((_seq_of(p) for p in self.folder.iterdir()), default=0)
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
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self._path = self.folder / f"{PREFIX}-{stamp}-{self._seq:06d}{PARTIAL_SUFFIX}"
        self._handle = self._path.open("ab")
        self._opened = time.monotonic()
        self._size = 0

    def _close_segment(self) -> None:
        if self._handle is None or self._path is None:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._path, _closed_name(self._path))
        self._handle, self._path = None, None


def _closed_name(partial: Path) -> Path:
    return partial.with_name(partial.name.removesuffix(PARTIAL_SUFFIX) + CLOSED_SUFFIX)


def _seq_of(path: Path) -> int:
    match = _NAME.match(path.name)
    return int(match.group(2)) if match else 0


def _close_leftovers(folder: Path) -> int:
    """Close ``.partial`` segments a crashed writer left: cut a torn last line, rename."""
    count = 0
    for path in sorted(folder.glob(f"{PREFIX}-*{PARTIAL_SUFFIX}")):
        data = path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if not whole:
            path.unlink()
            continue
        if len(whole) != len(data):
            with path.open("r+b") as handle:
                handle.truncate(len(whole))
        os.replace(path, _closed_name(path))
        count += 1
    if count:
        logger.warning("closed %d traffic-log segment(s) left open by a crash in %s", count, folder)
    return count


def list_segments(folder: str | Path, include_partial: bool = False) -> list[Path]:
    """Segments of a traffic-log folder in time order (closed ones only by default)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    paths = [
        p
        for p in folder.iterdir()
        if _NAME.match(p.name) and (include_partial or not p.name.endswith(PARTIAL_SUFFIX))
    ]
    return sorted(paths, key=lambda p: p.name.removesuffix(".partial"))


def read_segments(folder: str | Path, include_partial: bool = False) -> Iterator[dict[str, Any]]:
    """Every row of the folder's closed segments, oldest first.

    With ``include_partial`` the open segment's complete lines are read too (a
    line still being written is skipped).
    """
    for path in list_segments(folder, include_partial):
        with path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # the writer is mid-line
                if line.strip():
                    yield json.loads(line)
