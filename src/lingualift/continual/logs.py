"""Reading production queries: a traffic log file, a folder of log segments, or standard input.

The rows and segments are the server's traffic log, whose schema (fields, the
row -> :class:`Query` parse, segment naming) is :mod:`lingualift.data.traffic`.
:func:`read_log` yields every line after a cursor ``(name, line)``:

- a folder: its closed ``*.jsonl`` segments in name order (``*.partial`` files
  are still being written and are never read);
- a ``.jsonl`` file (traffic log or lingualift records) or a ``.parquet`` file
  (the line is the row number);
- ``-``: standard input (no cursor: a pipe is read once).

A line that is not a JSON object, or whose ``ts`` cannot be read, is yielded
as a problem (named by file and line) for the caller to count and skip.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lingualift.data.traffic import Problem, Query, list_segments, log_row, parse_row
from lingualift.errors import LingualiftError

__all__ = [
    "STDIN",
    "Problem",
    "Query",
    "check_source",
    "format_ts",
    "log_row",
    "parse_row",
    "read_log",
]

STDIN = "-"


def format_ts(seconds: float | None) -> str | None:
    """Window bounds in the monitor's reports (whole seconds, ``+00:00``; rows have their own
    ``ts`` format, :func:`lingualift.data.traffic.format_row_ts`)."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def _lines(handle: Any, source: str, after: int) -> Iterator[Query | Problem]:
    for number, raw in enumerate(handle, start=1):
        if number <= after or not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield Problem(source, number, f"malformed JSON ({exc.msg})")
            continue
        yield parse_row(row, source, number)


def check_source(source: str, allow_empty: bool = False) -> None:
    """Fail in one sentence when the log is missing or (unless allowed) holds nothing."""
    if source == STDIN:
        return
    path = Path(source)
    if not path.exists():
        raise LingualiftError(f"The log {path} does not exist; give a log file, folder or '-'.")
    if path.is_dir():
        if not allow_empty and not list_segments(path):
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
    if source == STDIN:
        yield from _lines(sys.stdin, STDIN, 0)
        return
    path = Path(source)
    if path.is_dir():
        for segment in list_segments(path):
            if after is not None and segment.name < after[0]:
                continue
            skip = after[1] if after is not None and segment.name == after[0] else 0
            with segment.open(encoding="utf-8", errors="replace") as handle:
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
    with path.open(encoding="utf-8", errors="replace") as handle:
        yield from _lines(handle, path.name, skip)
