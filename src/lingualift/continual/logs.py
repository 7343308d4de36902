"""Reading production queries: a traffic log file, a folder of log segments, or standard input.

The server writes one JSON object per request (``id``, ``ts`` in UTC ISO 8601,
``model``, ``lang``, ``lang_detected``, ``lang_confidence``, ``adapter``,
``text`` or null when text logging is off, ``text_sha1``, token counts,
``latency_ms``, ``status``), into segments that are written as ``*.partial``
and renamed to ``*.jsonl`` when closed. :func:`read_log` yields every line
after a cursor ``(name, line)``:

- a folder: its closed ``*.jsonl`` segments in name order (``*.partial`` files
  are still being written and are never read);
- a ``.jsonl`` file (traffic log or lingualift records) or a ``.parquet`` file
  (the line is the row number);
- ``-``: standard input (no cursor: a pipe is read once).

A line that is not valid UTF-8, not a JSON object, whose ``ts`` cannot be
read or whose ``lang`` names no language is yielded as a problem (named by
file and line) for the caller to count and skip; nothing is replaced silently.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lingualift.errors import LingualiftError
from lingualift.languages import normalize_language

STDIN = "-"


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


def log_row(
    id: str, ts: float, lang: str, text: str | None, adapter: str | None = None
) -> dict[str, Any]:
    """A traffic-log row in the server's schema (for simulated streams and tests)."""
    import hashlib

    return {
        "id": id,
        "ts": format_ts(ts),
        "model": lang,
        "lang": lang,
        "lang_detected": False,
        "lang_confidence": None,
        "adapter": adapter,
        "text": text,
        "text_sha1": hashlib.sha1((text or "").encode()).hexdigest() if text else None,
        "prompt_tokens": len((text or "").split()),
        "completion_tokens": 0,
        "latency_ms": None,
        "status": 200,
    }


def parse_ts(value: Any) -> float | None:
    """Seconds since the epoch from ISO 8601 text (naive times are UTC) or a number."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise ValueError("ts is neither text nor a number")
    stamp = dt.datetime.fromisoformat(value.strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def format_ts(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


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


def _lines(handle: Any, source: str, after: int) -> Iterator[Query | Problem]:
    """The lines of a text or binary handle; a binary line that is not UTF-8 is a problem."""
    for number, raw in enumerate(handle, start=1):
        if number <= after:
            continue
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                bad = raw[exc.start : exc.start + 1]
                yield Problem(source, number, f"byte {exc.start} ({bad!r}) is not UTF-8")
                continue
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield Problem(source, number, f"malformed JSON ({exc.msg})")
            continue
        yield parse_row(row, source, number)


def segments(folder: Path) -> list[Path]:
    """Closed segments of a log folder, in name order (``*.partial`` are skipped)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(".jsonl"))


def check_source(source: str, allow_empty: bool = False) -> None:
    """Fail in one sentence when the log is missing or (unless allowed) holds nothing."""
    if source == STDIN:
        return
    path = Path(source)
    if not path.exists():
        raise LingualiftError(f"The log {path} does not exist; give a log file, folder or '-'.")
    if path.is_dir():
        if not allow_empty and not segments(path):
            raise LingualiftError(
                f"The log folder {path} holds no closed segment (*.jsonl); wait for the server "
                "to close one, or use follow=true."
            )
        return
    if path.suffix.lower() not in (".jsonl", ".json", ".parquet"):
        raise LingualiftError(f"Cannot read {path}: give a .jsonl or .parquet log or a folder.")
    if not allow_empty and path.stat().st_size == 0:
        raise LingualiftError(f"The log {path} is empty; give a log with at least one query.")


def read_log(source: str, after: tuple[str, int] | None = None) -> Iterator[Query | Problem]:
    """Every query (or problem) after the cursor ``(name, line)``, in order (module docstring)."""
    if source == STDIN:  # bytes where the stream has them, so bad UTF-8 is named, not replaced
        yield from _lines(getattr(sys.stdin, "buffer", sys.stdin), STDIN, 0)
        return
    path = Path(source)
    if path.is_dir():
        for segment in segments(path):
            if after is not None and segment.name < after[0]:
                continue
            skip = after[1] if after is not None and segment.name == after[0] else 0
            with segment.open("rb") as handle:
                yield from _lines(handle, segment.name, skip)
        return
    skip = after[1] if after is not None and after[0] == path.name else 0
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise LingualiftError(f"{path} is not a readable Parquet file ({exc}).") from None
        for number, row in enumerate(rows, start=1):
            if number > skip:
                yield parse_row(row, path.name, number)
        return
    with path.open("rb") as handle:
        yield from _lines(handle, path.name, skip)
