"""The monitor's reader: traffic logs as before, every other input through the one reader with a
column mapping, cursors, problems named by file and line, bad files in one sentence."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json

import pytest

from lingualift.continual.logs import Problem, Query, check_source, is_log_folder, read_log
from lingualift.data import Columns
from lingualift.errors import LingualiftError

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MAPPING = Columns(text="question", id="qid", lang="language", ts="time")


def user_rows(n=4):
    """Queries as a user keeps them: their own column names, times as text."""
    return [
        {
            "qid": f"q{i}",
            "question": f"river bank {i}",
            "language": "sw",
            "time": (START + dt.timedelta(minutes=i)).isoformat(),
            "text": "not the query",  # a column called text that the mapping replaces
        }
        for i in range(n)
    ]


def write_csv(path, rows, delimiter=","):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def expected(name, lines):
    return [
        Query(
            id=f"q{i}",
            text=f"river bank {i}",
            lang="sw",
            ts=(START + dt.timedelta(minutes=i)).timestamp(),
            source=name,
            line=line,
        )
        for i, line in enumerate(lines)
    ]


def test_every_format_is_read_with_one_mapping(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = user_rows()
    sources = {
        "q.csv": write_csv(tmp_path / "q.csv", rows),
        "q.tsv": write_csv(tmp_path / "q.tsv", rows, "\t"),
        "q.json": tmp_path / "q.json",
        "q.jsonl.gz": tmp_path / "q.jsonl.gz",
        "q.parquet": tmp_path / "q.parquet",
    }
    sources["q.json"].write_text(json.dumps(rows, indent=1))  # one pretty-printed array
    with gzip.open(sources["q.jsonl.gz"], "wt") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), sources["q.parquet"])
    lines = {"q.csv": [2, 3, 4, 5], "q.tsv": [2, 3, 4, 5]}  # line 1 is the header
    for name, path in sources.items():
        found = list(read_log(str(path), columns=MAPPING))
        assert found == expected(name, lines.get(name, [1, 2, 3, 4])), name
        check_source(str(path))
    saved = tmp_path / "saved"
    datasets.Dataset.from_list(rows).save_to_disk(str(saved))
    assert list(read_log(f"hf:{saved}", columns=MAPPING)) == expected(f"hf:{saved}", [1, 2, 3, 4])
    assert list(read_log(str(saved), columns=MAPPING)) == expected(f"hf:{saved}", [1, 2, 3, 4])
    check_source(f"hf:{saved}")


def test_a_cursor_skips_what_was_read_in_files_and_folders_of_shards(tmp_path):
    rows = user_rows(6)
    path = write_csv(tmp_path / "q.csv", rows)
    assert [q.line for q in read_log(str(path), ("q.csv", 4), MAPPING)] == [5, 6, 7]
    shards = tmp_path / "shards"
    (shards / "b").mkdir(parents=True)
    write_csv(shards / "a.csv", rows[:3])
    write_csv(shards / "b" / "c.csv", rows[3:])
    assert not is_log_folder(shards)
    everything = list(read_log(str(shards), columns=MAPPING))
    assert [(q.source, q.line) for q in everything] == [
        ("a.csv", 2), ("a.csv", 3), ("a.csv", 4), ("b/c.csv", 2), ("b/c.csv", 3), ("b/c.csv", 4),
    ]  # fmt: skip
    after = list(read_log(str(shards), ("a.csv", 4), MAPPING))
    assert [(q.source, q.line) for q in after] == [("b/c.csv", 2), ("b/c.csv", 3), ("b/c.csv", 4)]


def test_problems_are_named_by_file_and_line_and_reading_goes_on(tmp_path):
    rows = user_rows(3)
    rows[1]["time"] = "yesterday"
    path = write_csv(tmp_path / "q.csv", rows)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("q9,river 9,sw,2026-01-01T00:09:00,x,one too many\n")
    found = list(read_log(str(path), columns=MAPPING))
    assert [type(x).__name__ for x in found] == ["Query", "Problem", "Query", "Problem"]
    assert found[1] == Problem("q.csv", 3, "unreadable ts 'yesterday'")
    assert found[3].where == "q.csv:5" and "more fields than the header" in found[3].reason
    array = tmp_path / "q.json"
    array.write_text(json.dumps([user_rows(1)[0], "not an object"]))
    problem = list(read_log(str(array), columns=MAPPING))[1]
    assert problem.where == "q.json:2" and "item 2 of the JSON array is a str" in problem.reason


def test_times_written_as_numbers_in_text_are_read():
    from lingualift.data.traffic import parse_ts

    assert parse_ts("1767225600") == parse_ts(1767225600) == 1767225600.0
    assert parse_ts(" 1767225600.5 ") == 1767225600.5
    assert parse_ts("2026-01-01T00:00:00Z") == 1767225600.0
    assert parse_ts("") is None
    for bad in ("nan", "inf", "yesterday"):
        with pytest.raises(ValueError):
            parse_ts(bad)


def test_traffic_log_folders_keep_their_segments_and_other_folders_are_data(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    assert is_log_folder(logs)  # empty: the server has not closed a segment yet
    (logs / "traffic-1.jsonl").write_text(json.dumps({"text": "river", "lang": "sw"}) + "\n")
    (logs / "traffic-2.jsonl.partial").write_text('{"text": "half')
    (logs / "notes.txt").write_text("not data")
    assert is_log_folder(logs)
    assert [q.text for q in read_log(str(logs))] == ["river"]
    (logs / "extra.parquet").write_bytes(b"PAR1")
    assert not is_log_folder(logs)


def test_bad_files_fail_in_the_readers_one_sentence(tmp_path):
    fake = tmp_path / "q.csv.gz"
    fake.write_text("question\nriver\n")
    with pytest.raises(
        LingualiftError, match="named as gzip-compressed CSV but its bytes are text"
    ):
        check_source(str(fake))
    unknown = tmp_path / "q.txt"
    unknown.write_text("river\n")
    with pytest.raises(LingualiftError, match=r"Cannot tell the format of .*q.txt"):
        check_source(str(unknown))
    document = tmp_path / "doc.json"
    document.write_text(json.dumps({"version": 1, "data": user_rows(2)}, indent=1))
    with pytest.raises(LingualiftError, match="holds one JSON object .* jq '.data'"):
        list(read_log(str(document), columns=MAPPING))
    with pytest.raises(LingualiftError, match="does not exist"):
        check_source(str(tmp_path / "missing.parquet"))
