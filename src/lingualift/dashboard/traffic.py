"""Requests over time per language and adapter, counted from the server's traffic log.

:class:`TrafficReader` reads a log folder's **closed** segments only
(:func:`lingualift.data.traffic.list_segments`: a ``*.partial`` segment is still
being written and is counted as open, never read), or one log file. A closed
segment never changes, so its counts are kept per segment (by name, size and
modification time) and a page load reads only the segments that appeared since
the last one. Counts are kept per second, language, adapter and outcome, and
:meth:`TrafficReader.read` puts them into buckets of a round width (1 s to 7 days)
chosen so that the whole log fits in ``max_buckets``. Lines that are not a JSON
object, or whose ``ts`` cannot be read, are counted and skipped: a dashboard
shows what it can and says what it could not read.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import threading
from pathlib import Path

from lingualift.data.traffic import PARTIAL_SUFFIX, list_segments, parse_ts

BASE_MODEL = "base model"
"""The label of requests answered without an adapter (``adapter: null``)."""
UNKNOWN_LANGUAGE = "unknown"
"""The language of rows that name none (identification was unsure)."""
BUCKET_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
                 43200, 86400, 2 * 86400, 7 * 86400)  # fmt: skip
"""Bucket widths in seconds that a chart's time axis can label plainly."""

_Key = tuple[int, str, str, bool]
"""(second, language, adapter label, answered with a 2xx status)."""


@dataclasses.dataclass
class SegmentCounts:
    """What one segment holds, counted once."""

    counts: collections.Counter[_Key]
    rows: int = 0
    malformed: int = 0
    first_malformed: str | None = None
    no_ts: int = 0


@dataclasses.dataclass
class TrafficSeries:
    """Requests per time bucket, per language and adapter."""

    source: str
    bucket_seconds: int
    start: float | None
    """Start of the first bucket, seconds since the epoch (None: no timed request)."""
    n_buckets: int
    counts: dict[str, dict[str, list[int]]]
    """language -> adapter label (``sw/v2``, or :data:`BASE_MODEL`) -> requests per bucket."""
    failed: dict[str, list[int]]
    """language -> requests per bucket answered with a status other than 2xx."""
    rows: int
    """Rows read (every closed segment)."""
    segments: int
    """Closed segments read."""
    open_segments: int
    """Segments still being written (``*.partial``), not read."""
    malformed: int
    first_malformed: str | None
    no_ts: int
    """Rows without a readable time (counted in the totals, not in the buckets)."""
    problem: str | None = None
    """Why the log could not be read at all (missing folder)."""

    def totals(self, lang: str) -> dict[str, int]:
        """Requests per adapter of ``lang`` over the whole log."""
        return {label: sum(series) for label, series in self.counts.get(lang, {}).items()}

    def bucket_starts(self) -> list[float]:
        if self.start is None:
            return []
        return [self.start + i * self.bucket_seconds for i in range(self.n_buckets)]


def bucket_width(span_seconds: float, max_buckets: int) -> int:
    """The smallest width of :data:`BUCKET_WIDTHS` that fits ``span_seconds`` in ``max_buckets``."""
    for width in BUCKET_WIDTHS:
        if math.floor(span_seconds / width) + 1 <= max_buckets:
            return width
    return BUCKET_WIDTHS[-1]


def count_lines(lines: list[bytes], name: str) -> SegmentCounts:
    """Counts of one segment's lines (``name`` names the segment in the first malformed line)."""
    found = SegmentCounts(collections.Counter())
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            ts = parse_ts(row.get("ts"))
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            found.malformed += 1
            if found.first_malformed is None:
                found.first_malformed = f"{name}:{number}: {str(exc)[:80]}"
            continue
        found.rows += 1
        if ts is None:
            found.no_ts += 1
            continue
        lang = str(row.get("lang") or UNKNOWN_LANGUAGE)
        adapter = row.get("adapter")
        label = str(adapter) if adapter else BASE_MODEL
        status = row.get("status")
        ok = isinstance(status, int) and 200 <= status < 300
        found.counts[(math.floor(ts), lang, label, ok)] += 1
    return found


class TrafficReader:
    """Counts of a traffic log, re-read live and cached per closed segment (module docstring).

    Args:
        source: a log folder (the server's ``log_dir``) or one JSONL log file.
    """

    def __init__(self, source: str | Path) -> None:
        self.source = Path(source)
        self._cache: dict[str, tuple[tuple[int, int], SegmentCounts]] = {}
        self._lock = threading.Lock()  # page loads run in worker threads

    def _segment(self, path: Path, whole_lines_only: bool) -> SegmentCounts:
        stat = path.stat()
        key = (stat.st_size, stat.st_mtime_ns)
        cached = self._cache.get(path.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        lines = path.read_bytes().splitlines(keepends=True)
        if whole_lines_only and lines and not lines[-1].endswith(b"\n"):
            lines = lines[:-1]  # a file still being appended to: its last line may be cut
        counts = count_lines(lines, path.name)
        self._cache[path.name] = (key, counts)
        return counts

    def read(self, max_buckets: int = 60) -> TrafficSeries:
        """The log as it is now, in at most ``max_buckets`` buckets per series."""
        with self._lock:
            if self.source.is_dir():
                paths = list_segments(self.source)
                open_segments = sum(
                    1 for p in self.source.iterdir() if p.name.endswith(PARTIAL_SUFFIX)
                )
                segments = []
                for path in paths:
                    try:
                        segments.append(self._segment(path, whole_lines_only=False))
                    except FileNotFoundError:  # removed since it was listed
                        continue
                names = {p.name for p in paths}
                for gone in set(self._cache) - names:  # rotated away or deleted
                    del self._cache[gone]
            elif self.source.is_file():
                paths, open_segments = [self.source], 0
                try:
                    segments = [self._segment(self.source, whole_lines_only=True)]
                except FileNotFoundError:
                    segments = []
            else:
                return empty_series(self.source, f"{self.source} does not exist (yet)")
        return combine(str(self.source), segments, len(segments), open_segments, max_buckets)


def empty_series(source: Path, problem: str | None = None) -> TrafficSeries:
    return TrafficSeries(str(source), 1, None, 0, {}, {}, 0, 0, 0, 0, None, 0, problem)


def combine(
    source: str,
    segments: list[SegmentCounts],
    n_segments: int,
    open_segments: int,
    max_buckets: int,
) -> TrafficSeries:
    """Segments' counts as one :class:`TrafficSeries` of round-width buckets."""
    total: collections.Counter[_Key] = collections.Counter()
    for segment in segments:
        total.update(segment.counts)
    malformed = [s.first_malformed for s in segments if s.first_malformed]
    series = TrafficSeries(
        source=source, bucket_seconds=1, start=None, n_buckets=0, counts={}, failed={},
        rows=sum(s.rows for s in segments), segments=n_segments, open_segments=open_segments,
        malformed=sum(s.malformed for s in segments),
        first_malformed=malformed[0] if malformed else None,
        no_ts=sum(s.no_ts for s in segments),
    )  # fmt: skip
    if not total:
        return series
    first = min(k[0] for k in total)
    last = max(k[0] for k in total)
    width = bucket_width(last - first, max_buckets)
    start = first // width * width
    n = (last - start) // width + 1
    series.bucket_seconds, series.start, series.n_buckets = width, float(start), n
    for (second, lang, label, ok), count in sorted(total.items()):
        index = (second - start) // width
        by_label = series.counts.setdefault(lang, {})
        by_label.setdefault(label, [0] * n)[index] += count
        if not ok:
            series.failed.setdefault(lang, [0] * n)[index] += count
    return series
