"""Reading production queries: a traffic log, any data file the one reader takes, or standard input.

The rows and segments are the server's traffic log, whose schema (fields, the
row -> :class:`Query` parse, segment naming) is :mod:`lingualift.data.traffic`.
:func:`read_log` yields every line after a cursor ``(name, line)``:

- a traffic-log folder (a folder of ``*.jsonl`` files only, or an empty one): its
  closed ``*.jsonl`` segments in name order (``*.partial`` files are still being
  written and are never read);
- a plain ``.jsonl`` file (a traffic log, or any JSON Lines), read line by line;
- anything else the one reader takes (:func:`lingualift.data.readers.iter_rows`):
  ``.json`` arrays, CSV/TSV, Parquet, compressed files, ``save_to_disk`` folders,
  folders of shards, ``hf:`` datasets; the name in the cursor is the file's name
  (its path under a folder of shards, the spec for ``hf:``) and the line is its line
  or row, and every line up to the cursor is read again and skipped;
- ``-``: standard input (no cursor: a pipe is read once).

A :class:`~lingualift.data.columns.Columns` mapping renames the user's columns to
the log's names first (``columns.text=question columns.ts=time``). A line that is
not valid UTF-8, not a JSON object, whose ``ts`` cannot be read or whose ``lang``
names no language is yielded as a problem (named by file and line) for the caller
to count and skip; nothing is replaced silently. A file that cannot be read at all
(a misnamed compression, a damaged Parquet file) fails in the reader's one sentence.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lingualift.data.columns import Columns
from lingualift.data.formats import check_bytes, file_format, is_data_file, split_suffixes
from lingualift.data.readers import HF_PREFIX, is_saved_dataset, iter_rows
from lingualift.data.traffic import (
    CLOSED_SUFFIX,
    PARTIAL_SUFFIX,
    Problem,
    Query,
    list_segments,
    log_row,
    parse_row,
)
from lingualift.errors import LingualiftError

__all__ = [
    "STDIN",
    "Problem",
    "Query",
    "check_source",
    "format_ts",
    "is_log_folder",
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


def _lines(
    handle: Any, source: str, after: int, columns: Columns | None = None
) -> Iterator[Query | Problem]:
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
        if columns is not None and isinstance(row, dict):
            row = columns.apply(row)
        yield parse_row(row, source, number)


def is_log_folder(path: Path) -> bool:
    """A traffic-log folder: nothing but ``*.jsonl`` segments (closed or open) at its top level
    (an empty folder counts: the server has not closed a segment yet). A folder with other data
    files, subfolders of them or a saved dataset is read by the one reader instead."""
    if not path.is_dir() or is_saved_dataset(path):
        return False
    for entry in path.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir() or (
            is_data_file(entry) and not entry.name.endswith((CLOSED_SUFFIX, PARTIAL_SUFFIX))
        ):
            return False
    return True


def _plain_jsonl(path: Path) -> bool:
    return split_suffixes(path) == ("jsonl", None)


def check_source(source: str, allow_empty: bool = False) -> None:
    """Fail in one sentence when the input is missing, unreadable or (unless allowed) empty."""
    if source == STDIN or source.startswith(HF_PREFIX):
        return  # a pipe, or a dataset the reader loads (its errors are its own sentences)
    path = Path(source)
    if not path.exists():
        raise LingualiftError(
            f"The log {path} does not exist; give a log file, folder, data file, hf:<dataset> "
            "or '-'."
        )
    if path.is_dir():
        if is_log_folder(path) and not allow_empty and not list_segments(path):
            raise LingualiftError(
                f"The log folder {path} holds no closed segment (*.jsonl); wait for the server "
                "to close one, or use follow=true."
            )
        return
    fmt = file_format(path)  # an unknown suffix fails here, naming what is read
    check_bytes(path, fmt)  # so does a name that contradicts the bytes
    if not allow_empty and path.stat().st_size == 0:
        raise LingualiftError(f"The log {path} is empty; give a log with at least one query.")


def read_log(
    source: str, after: tuple[str, int] | None = None, columns: Columns | None = None
) -> Iterator[Query | Problem]:
    """Every query (or problem) after the cursor ``(name, line)``, in order (module docstring)."""
    if source == STDIN:  # bytes where the stream has them, so bad UTF-8 is named, not replaced
        yield from _lines(getattr(sys.stdin, "buffer", sys.stdin), STDIN, 0, columns)
        return
    path = Path(source)
    if is_log_folder(path):
        for segment in list_segments(path):
            if after is not None and segment.name < after[0]:
                continue
            skip = after[1] if after is not None and segment.name == after[0] else 0
            with segment.open("rb") as handle:
                yield from _lines(handle, segment.name, skip, columns)
        return
    if path.is_file() and _plain_jsonl(path):
        skip = after[1] if after is not None and after[0] == path.name else 0
        with path.open("rb") as handle:
            yield from _lines(handle, path.name, skip, columns)
        return
    yield from _reader_rows(source, after, columns)


def _reader_rows(
    source: str, after: tuple[str, int] | None, columns: Columns | None
) -> Iterator[Query | Problem]:
    """:func:`iter_rows` as queries and problems, each named as the cursor names it."""
    root = Path(source)
    folder = root if root.is_dir() else None
    problems: list[Problem] = []

    def name(where: str) -> str:
        if where.startswith(HF_PREFIX):
            return where
        if folder is not None:
            return Path(where).relative_to(folder).as_posix()
        return Path(where).name

    def passed(key: str, line: int) -> bool:
        """Whether (key, line) comes after the cursor (files in the reader's path order)."""
        if after is None:
            return True
        if key == after[0]:
            return line > after[1]
        return Path(key).parts > Path(after[0]).parts

    def on_error(where: str, line: int, reason: str) -> None:
        problems.append(Problem(name(where), line, reason))

    for where, line, row in iter_rows(source, columns, on_error=on_error):
        yield from (p for p in problems if passed(p.source, p.line))
        problems.clear()
        key = name(where)
        if passed(key, line):
            yield parse_row(row, key, line)
    yield from (p for p in problems if passed(p.source, p.line))
