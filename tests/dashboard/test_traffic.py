"""Requests per language and adapter from a traffic-log folder, closed segments only."""

from __future__ import annotations

import json

import pytest

from lingualift.dashboard import traffic as traffic_module
from lingualift.dashboard.traffic import BASE_MODEL, TrafficReader, bucket_width
from lingualift.data.traffic import log_row

from .conftest import T0, write_jsonl


def test_counts_per_language_and_adapter(loop_files):
    series = TrafficReader(loop_files.traffic).read(max_buckets=60)
    assert series.segments == 2 and series.open_segments == 1  # the .partial is not read
    assert series.rows == 12 and series.malformed == 0
    assert series.totals("sw") == {"sw/v1": 6, "sw/v2": 4}
    assert series.totals("fr") == {BASE_MODEL: 2}
    # 91 s of traffic in at most 60 buckets: 2 s buckets from an even second.
    assert series.bucket_seconds == 2 and series.start == T0 and series.n_buckets == 46
    assert series.counts["sw"]["sw/v2"][30] == 1  # the first v2 request, at T0 + 60
    assert series.failed == {}
    starts = series.bucket_starts()
    assert len(starts) == series.n_buckets and starts[1] - starts[0] == 2


def test_failed_requests_and_malformed_lines_are_counted(tmp_path):
    rows = [
        log_row("a", T0, "sw", "x", "sw/v1"),
        {**log_row("b", T0 + 1, "sw", "y"), "status": 429},
    ]
    path = write_jsonl(tmp_path / "log" / "a.jsonl", rows)
    with path.open("a") as handle:
        handle.write("{not json\n" + json.dumps({"ts": "yesterday"}) + "\n[1]\n")
        handle.write(json.dumps({"lang": "sw", "adapter": "sw/v1"}) + "\n")  # no ts
    series = TrafficReader(tmp_path / "log").read()
    assert series.malformed == 3 and series.first_malformed.startswith("a.jsonl:3: ")
    assert series.rows == 3 and series.no_ts == 1
    assert series.failed == {"sw": [0, 1]} and series.totals("sw") == {"sw/v1": 1, BASE_MODEL: 1}


def test_closed_segments_are_read_once(loop_files, monkeypatch):
    calls = []
    real = traffic_module.count_lines
    monkeypatch.setattr(traffic_module, "count_lines", lambda lines, name: calls.append(name) or
                        real(lines, name))  # fmt: skip
    reader = TrafficReader(loop_files.traffic)
    reader.read()
    reader.read()
    assert len(calls) == 2  # two closed segments, each counted once
    partial = loop_files.traffic / "traffic-20260101T100200Z-000003.jsonl.partial"
    partial.rename(partial.with_name(partial.name.removesuffix(".partial")))  # the server closes it
    series = reader.read()
    assert len(calls) == 3 and series.segments == 3 and series.open_segments == 0
    assert series.totals("sw")["sw/v2"] == 8
    (loop_files.traffic / "traffic-20260101T100000Z-000001.jsonl").unlink()  # rotated away
    assert reader.read().totals("sw") == {"sw/v2": 8}


def test_one_log_file_with_a_line_being_written(tmp_path):
    path = write_jsonl(tmp_path / "traffic.jsonl", [log_row("a", T0, "sw", "x", "sw/v1")])
    with path.open("a") as handle:
        handle.write('{"id": "b", "ts": "2026-01-01T10:00')  # the writer is mid-line
    series = TrafficReader(path).read()
    assert series.rows == 1 and series.malformed == 0 and series.segments == 1


def test_a_missing_log_is_a_note(tmp_path):
    series = TrafficReader(tmp_path / "nowhere").read()
    assert series.rows == 0 and "does not exist" in series.problem and series.bucket_starts() == []


@pytest.mark.parametrize(
    ("span", "buckets", "width"),
    [
        (0, 60, 1),
        (59, 60, 1),
        (60, 60, 2),
        (3600, 60, 120),
        (86400 * 30, 60, 86400),
        (1e9, 60, 604800),
    ],
)
def test_bucket_width(span, buckets, width):
    assert bucket_width(span, buckets) == width
