"""The traffic log's schema, shared by the server that writes it and the monitor that reads it.

One JSON object per request (DESIGN.md, "Serving"), fields in this order
(:data:`ROW_FIELDS`): ``id``, ``ts`` (UTC, ISO 8601 with milliseconds and a
``Z``), ``model`` (as requested), ``lang``, ``lang_detected``,
``lang_confidence``, ``adapter`` ('sw/v3', or null for the base model), ``text``
(the prompt; for chat the last user message; null when text logging is off),
``text_sha1``, ``prompt_tokens``, ``completion_tokens``, ``latency_ms``,
``status``, ``user`` (the end-user id the client sent, or null). :func:`traffic_row` builds a row, :func:`parse_row` turns one back
into the :class:`Query` the drift monitor needs.

A log is a folder of JSON Lines segments. A segment is written as
``<name>.jsonl.partial`` and renamed to ``<name>.jsonl`` once closed, so a
reader that takes only ``*.jsonl`` files (:func:`list_segments`) never sees a
half-written one. The server names its segments
``traffic-<UTC start>-<seq>.jsonl`` (:func:`segment_name`), so names sort in
time order; readers take any ``*.jsonl`` file in name order, so segments cut
by other tools can sit in the same folder.

The writer (a thread, rotation, crash leftovers) is
:class:`lingualift.serving.traffic.TrafficLog`; the monitor's reader (cursors,
files, standard input, problems counted) is :mod:`lingualift.continual.logs`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lingualift.errors import LingualiftError
from lingualift.languages import normalize_language

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
    "user",
)

SEGMENT_PREFIX = "traffic"
CLOSED_SUFFIX = ".jsonl"
PARTIAL_SUFFIX = ".jsonl.partial"
_SERVER_SEGMENT = re.compile(
    rf"^{SEGMENT_PREFIX}-(\d{{8}}T\d{{6}}Z)-(\d+){re.escape(CLOSED_SUFFIX)}(\.partial)?$"
)


# -- rows ---------------------------------------------------------------------------------


def format_row_ts(moment: dt.datetime) -> str:
    """A row's ``ts``: UTC, ISO 8601, milliseconds, ``Z`` (``2026-12-03T11:05:01.123Z``)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(value: Any) -> float | None:
    """Seconds since the epoch from ISO 8601 text (naive times are UTC) or a number, also one
    written as text (``"1733480000.5"``: CSV and TSV cells are text)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise ValueError("ts is neither text nor a number")
    text = value.strip()
    if not text:
        return None  # an empty cell: the row has no time
    try:
        seconds = float(text)
    except ValueError:
        pass  # not a number: ISO 8601 below
    else:
        if not math.isfinite(seconds):
            raise ValueError("ts is not a finite number")
        return seconds
    stamp = dt.datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


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
    latency_ms: float | None,
    status: int,
    user: str | None = None,
) -> dict[str, Any]:
    """One log row in :data:`ROW_FIELDS` order (``text`` left out unless ``log_text``; its
    SHA-1 is kept either way, so repeated prompts stay countable)."""
    return {
        "id": request_id,
        "ts": format_row_ts(received),
        "model": model,
        "lang": lang,
        "lang_detected": lang_detected,
        "lang_confidence": None if lang_confidence is None else round(lang_confidence, 4),
        "adapter": adapter,
        "text": text if log_text else None,
        "text_sha1": hashlib.sha1(text.encode("utf-8")).hexdigest() if text is not None else None,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "latency_ms": None if latency_ms is None else round(latency_ms, 2),
        "status": status,
        "user": user,
    }


def log_row(
    id: str, ts: float, lang: str, text: str | None, adapter: str | None = None
) -> dict[str, Any]:
    """A row as the server would write it for a request naming ``lang`` (simulated streams and
    tests): ``ts`` in seconds since the epoch, whitespace-split words as prompt tokens."""
    return traffic_row(
        request_id=id,
        received=dt.datetime.fromtimestamp(ts, dt.UTC),
        model=lang,
        lang=lang,
        lang_detected=False,
        lang_confidence=None,
        adapter=adapter,
        text=text,
        log_text=True,
        prompt_tokens=len((text or "").split()),
        completion_tokens=0,
        latency_ms=None,
        status=200,
    )


@dataclasses.dataclass
class Query:
    """One production query as the monitor needs it."""

    id: str
    text: str | None
    """None when the log has no text for it (text logging off)."""
    lang: str | None
    """The language the log names (None: identify it)."""
    ts: float | None
    """UTC seconds since the epoch (None when the row has no time)."""
    source: str
    line: int
    has_text_field: bool = True

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    def to_state(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "lang": self.lang, "ts": self.ts,
                "source": self.source, "line": self.line}  # fmt: skip

    @classmethod
    def from_state(cls, row: dict[str, Any]) -> Query:
        return cls(**row)


@dataclasses.dataclass
class Problem:
    """A line that could not be read."""

    source: str
    line: int
    reason: str

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def parse_row(row: Any, source: str, line: int) -> Query | Problem:
    """A :class:`Query` from one decoded log row, or the :class:`Problem` with it."""
    if not isinstance(row, dict):
        return Problem(source, line, "not a JSON object")
    try:
        ts = parse_ts(row.get("ts"))
    except (ValueError, TypeError):
        return Problem(source, line, f"unreadable ts {str(row.get('ts'))[:40]!r}")
    text = row.get("text")
    if text is not None and not isinstance(text, str):
        return Problem(source, line, "text is not a string")
    lang = row.get("lang")
    if lang:
        try:
            normalize_language(str(lang))
        except LingualiftError:
            return Problem(source, line, f"unknown language {str(lang)[:40]!r}")
    return Query(
        id=str(row.get("id") or f"{source}:{line}"),
        text=text if text is None or text.strip() else None,
        lang=str(lang) if lang else None,
        ts=ts,
        source=source,
        line=line,
        has_text_field="text" in row,
    )


# -- segments -----------------------------------------------------------------------------


def segment_name(started: dt.datetime, seq: int) -> str:
    """The name the server gives a new (still open) segment."""
    stamp = started.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{SEGMENT_PREFIX}-{stamp}-{seq:06d}{PARTIAL_SUFFIX}"


def segment_seq(path: Path) -> int:
    """The sequence number of a server-named segment (0 for any other file)."""
    match = _SERVER_SEGMENT.match(path.name)
    return int(match.group(2)) if match else 0


def closed_name(partial: Path) -> Path:
    """Where an open segment goes when it is closed."""
    return partial.with_name(partial.name.removesuffix(PARTIAL_SUFFIX) + CLOSED_SUFFIX)


def list_segments(folder: str | Path, include_partial: bool = False) -> list[Path]:
    """The segments of a log folder in name (time) order: closed ones, and with
    ``include_partial`` the open ones too."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    suffixes = (CLOSED_SUFFIX, PARTIAL_SUFFIX) if include_partial else (CLOSED_SUFFIX,)
    paths = [p for p in folder.iterdir() if p.name.endswith(suffixes) and p.is_file()]
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
