"""The traffic-log writer: server rows, rotation, whole segments only, never blocking, crash
leftovers, and the monitor reading what it wrote (the schema: tests/data/test_traffic.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading

import pytest

from lingualift.continual.logs import Query, read_log
from lingualift.data.traffic import ROW_FIELDS, list_segments, read_segments, traffic_row
from lingualift.errors import LingualiftError
from lingualift.serving.traffic import TrafficLog

from .conftest import ENGLISH, FRENCH, live_server, openai_client, serve_config, wait_for


def row(i: int, received: dt.datetime | None = None) -> dict:
    return traffic_row(
        request_id=f"r{i}",
        received=received or dt.datetime.now(dt.UTC),
        model="auto",
        lang="sw",
        lang_detected=True,
        lang_confidence=0.97,
        adapter="sw/v3",
        text=f"habari {i}",
        log_text=True,
        prompt_tokens=3,
        completion_tokens=5,
        latency_ms=12.5,
        status=200,
    )


def test_server_rows_follow_the_schema_and_shutdown_closes_the_segment(model_dir, store, tmp_path):
    config = serve_config(model_dir, store, tmp_path, log_text=False)
    with live_server(config) as (parts, url):
        client = openai_client(url)
        client.completions.create(model="sw", prompt="jambo", max_tokens=3)
        client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": ENGLISH}, {"role": "user", "content": FRENCH}],
            max_tokens=2,
        )
        with pytest.raises(Exception, match="404"):
            client.completions.create(model="zz-none", prompt="hi")
        wait_for(lambda: parts.traffic.written == 3, what="three rows")
        assert list_segments(tmp_path / "traffic") == []  # still open: readers see nothing yet
        assert len(list(read_segments(tmp_path / "traffic", include_partial=True))) == 3
    # Stopping the server flushed and renamed the segment.
    folder = tmp_path / "traffic"
    assert not list(folder.glob("*.partial"))
    rows = list(read_segments(folder))
    assert [list(r) for r in rows] == [list(ROW_FIELDS)] * 3
    named, chat, unknown = rows
    assert (named["model"], named["lang"], named["lang_detected"], named["adapter"]) == (
        "sw",
        "sw",
        False,
        "sw/v1",
    )
    assert named["lang_confidence"] is None and named["status"] == 200
    assert named["text"] is None  # log_text=false keeps only the hash
    assert named["text_sha1"] == hashlib.sha1(b"jambo").hexdigest()
    assert named["prompt_tokens"] == len(parts.engine.encode("jambo"))
    assert 1 <= named["completion_tokens"] <= 3 and named["latency_ms"] > 0
    assert dt.datetime.fromisoformat(named["ts"]).tzinfo is not None
    # Chat rows are routed and logged by the last user message.
    assert (chat["lang"], chat["adapter"], chat["lang_detected"]) == ("fr", "fr/v1", True)
    assert chat["text_sha1"] == hashlib.sha1(FRENCH.encode()).hexdigest()
    assert 0.5 < chat["lang_confidence"] <= 1
    assert (unknown["status"], unknown["model"], unknown["adapter"]) == (404, "zz-none", None)


def test_segments_rotate_by_size_and_sort_in_time_order(tmp_path):
    with TrafficLog(tmp_path, max_bytes=600) as log:
        for i in range(12):
            assert log.write(row(i))
    segments = list_segments(tmp_path)
    assert len(segments) >= 3 and segments == sorted(segments)
    assert all(p.name.startswith("traffic-") and p.suffix == ".jsonl" for p in segments)
    assert [r["id"] for r in read_segments(tmp_path)] == [f"r{i}" for i in range(12)]
    # A new writer on the folder continues the sequence: names keep sorting in order.
    with TrafficLog(tmp_path, max_bytes=600) as log:
        log.write(row(99))
    assert [r["id"] for r in read_segments(tmp_path)][-1] == "r99"
    assert list_segments(tmp_path)[-1].name.endswith(f"-{len(segments) + 1:06d}.jsonl")


def test_segments_rotate_by_time_while_the_log_stays_open(tmp_path):
    with TrafficLog(tmp_path, max_seconds=0.2) as log:
        log.write(row(0))
        wait_for(lambda: list_segments(tmp_path), what="the segment to close on time")
        assert [r["id"] for r in read_segments(tmp_path)] == ["r0"]
        log.write(row(1))
        wait_for(lambda: len(list_segments(tmp_path)) == 2, what="a second segment")


def test_a_full_queue_drops_and_counts_rows_instead_of_blocking(tmp_path, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    original = TrafficLog._append

    def stuck_disk(self, data):  # the writer is stuck on a slow disk
        entered.set()
        release.wait(10)
        original(self, data)

    monkeypatch.setattr(TrafficLog, "_append", stuck_disk)
    drops = []
    log = TrafficLog(tmp_path, queue_size=2, on_drop=lambda: drops.append(1))
    assert log.write(row(0))
    assert entered.wait(10)
    results = [log.write(row(i)) for i in range(1, 6)]  # returns at once: two wait, three drop
    assert results == [True, True, False, False, False]
    assert log.dropped == len(drops) == 3
    release.set()
    log.close()
    assert [r["id"] for r in read_segments(tmp_path)] == ["r0", "r1", "r2"]


def test_a_crashed_writers_partial_segment_is_closed_with_its_torn_line_cut(tmp_path):
    whole = json.dumps(row(0)) + "\n"
    leftover = tmp_path / "traffic-20261203T110501Z-000007.jsonl.partial"
    leftover.write_text(whole + '{"id": "torn", "ts"', "utf-8")
    assert [r["id"] for r in read_segments(tmp_path, include_partial=True)] == ["r0"]
    assert list(read_segments(tmp_path)) == []  # the monitor reads closed segments only
    with TrafficLog(tmp_path) as log:
        assert log.recovered == 1
        log.write(row(1))
    assert [r["id"] for r in read_segments(tmp_path)] == ["r0", "r1"]
    assert list_segments(tmp_path)[-1].name.endswith("-000008.jsonl")


def test_two_writers_on_one_folder_are_refused(tmp_path):
    with TrafficLog(tmp_path), pytest.raises(LingualiftError, match="own log_dir"):
        TrafficLog(tmp_path)


def test_the_monitor_reads_what_the_writer_wrote(tmp_path):
    received = dt.datetime(2026, 12, 3, 11, 5, 1, 250_000, tzinfo=dt.UTC)
    with TrafficLog(tmp_path, max_bytes=600) as log:
        for i in range(5):
            log.write(row(i, received + dt.timedelta(seconds=i)))
    segments = [p.name for p in list_segments(tmp_path)]
    assert len(segments) >= 2  # rotated, so the reader crosses segments
    queries = list(read_log(str(tmp_path)))
    assert all(isinstance(q, Query) for q in queries)
    assert [(q.id, q.text, q.lang) for q in queries] == [
        (f"r{i}", f"habari {i}", "sw") for i in range(5)
    ]
    assert [q.ts for q in queries] == [received.timestamp() + i for i in range(5)]
    assert sorted({q.source for q in queries}) == segments
