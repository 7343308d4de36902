"""The traffic-log schema: rows, the row -> Query parse, the ts format, segment naming."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from lingualift.data.traffic import (
    ROW_FIELDS,
    Problem,
    Query,
    closed_name,
    list_segments,
    log_row,
    parse_row,
    read_segments,
    segment_name,
    segment_seq,
    traffic_row,
)

RECEIVED = dt.datetime(2026, 12, 3, 11, 5, 1, 123_456, tzinfo=dt.UTC)


def server_row(**overrides) -> dict:
    values = dict(
        request_id="cmpl-1",
        received=RECEIVED,
        model="auto",
        lang="sw",
        lang_detected=True,
        lang_confidence=0.976543,
        adapter="sw/v3",
        text="habari ya asubuhi",
        log_text=True,
        prompt_tokens=5,
        completion_tokens=7,
        latency_ms=12.3456,
        status=200,
    )
    return traffic_row(**{**values, **overrides})


def test_a_row_has_the_schemas_fields_in_order_and_parses_back_into_a_query():
    row = server_row()
    assert list(row) == list(ROW_FIELDS)
    assert row["ts"] == "2026-12-03T11:05:01.123Z"
    assert (row["lang_confidence"], row["latency_ms"]) == (0.9765, 12.35)
    assert row["text_sha1"] == hashlib.sha1(b"habari ya asubuhi").hexdigest()
    query = parse_row(json.loads(json.dumps(row)), "seg.jsonl", 4)
    assert query == Query(
        id="cmpl-1",
        text="habari ya asubuhi",
        lang="sw",
        ts=RECEIVED.replace(microsecond=123_000).timestamp(),
        source="seg.jsonl",
        line=4,
    )
    assert query.where == "seg.jsonl:4"
    assert Query.from_state(query.to_state()) == query


def test_without_text_logging_the_hash_stays_and_the_query_has_no_text():
    row = server_row(log_text=False)
    assert row["text"] is None and row["text_sha1"] == server_row()["text_sha1"]
    query = parse_row(row, "seg.jsonl", 1)
    assert query.text is None and query.has_text_field


def test_simulated_rows_are_server_rows():
    row = log_row("q1", RECEIVED.timestamp(), "hi", "namaste duniya", "hi/v2")
    assert list(row) == list(ROW_FIELDS)
    assert row["ts"] == "2026-12-03T11:05:01.123Z"
    assert (row["model"], row["lang"], row["adapter"], row["prompt_tokens"]) == (
        "hi",
        "hi",
        "hi/v2",
        2,
    )
    assert parse_row(row, "sim", 1).ts == RECEIVED.replace(microsecond=123_000).timestamp()


def test_rows_that_cannot_become_queries_are_problems_named_by_line():
    assert parse_row(["a", "list"], "seg.jsonl", 3) == Problem("seg.jsonl", 3, "not a JSON object")
    bad_ts = parse_row({**server_row(), "ts": "yesterday"}, "seg.jsonl", 5)
    assert isinstance(bad_ts, Problem) and "unreadable ts 'yesterday'" in bad_ts.reason
    assert parse_row({**server_row(), "text": 3}, "seg.jsonl", 6).reason == "text is not a string"
    # Numbers and naive times are read as UTC seconds; rows without ts or id still count.
    assert parse_row({"ts": 12.5, "text": "x"}, "s", 1).ts == 12.5
    naive = parse_row({"ts": "2026-12-03T11:05:01", "text": "x"}, "s", 2)
    assert naive.ts == RECEIVED.replace(microsecond=0).timestamp() and naive.id == "s:2"


def test_segments_are_closed_jsonl_files_in_name_order(tmp_path):
    open_name = segment_name(RECEIVED, 7)
    assert open_name == "traffic-20261203T110501Z-000007.jsonl.partial"
    partial = tmp_path / open_name
    closed = closed_name(partial)
    assert closed.name == "traffic-20261203T110501Z-000007.jsonl"
    assert segment_seq(closed) == segment_seq(partial) == 7
    assert segment_seq(tmp_path / "seg-0001.jsonl") == 0  # not a server name
    older = tmp_path / segment_name(RECEIVED - dt.timedelta(hours=1), 6)
    rows = {older: server_row(request_id="a"), partial: server_row(request_id="b")}
    for path, row in rows.items():
        closed_name(path).write_text(json.dumps(row) + "\n", "utf-8")
    partial.with_name(segment_name(RECEIVED, 8)).write_text(
        json.dumps(server_row(request_id="c")) + "\n" + '{"torn', "utf-8"
    )
    (tmp_path / "notes.txt").write_text("not a segment")
    (tmp_path / "cut-by-hand.jsonl").write_text(json.dumps(server_row(request_id="d")) + "\n")
    names = [p.name for p in list_segments(tmp_path)]
    assert names == [
        "cut-by-hand.jsonl",
        "traffic-20261203T100501Z-000006.jsonl",
        "traffic-20261203T110501Z-000007.jsonl",
    ]
    assert [r["id"] for r in read_segments(tmp_path)] == ["d", "a", "b"]
    assert [r["id"] for r in read_segments(tmp_path, include_partial=True)] == ["d", "a", "b", "c"]
    assert list_segments(tmp_path / "missing") == []
