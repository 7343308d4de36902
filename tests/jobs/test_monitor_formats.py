"""The monitor reads production queries in every format the other verbs read, with one column
mapping, and gets the same windows as from the server's traffic log."""

from __future__ import annotations

import csv
import gzip
import json

import pytest

from lingualift.cli import main
from lingualift.errors import LingualiftError
from lingualift.jobs.monitor import MonitorConfig, run_monitor
from lingualift.langid import DEFAULT_MIN_CONFIDENCE
from tests.compass.conftest import ToyEncoder
from tests.continual.helpers import TOPICS, log_rows, store_with_reference, texts, write_log

WINDOW = 40
MAPPING = {"text": "question", "id": "qid", "lang": "language", "ts": "time"}


def queries():
    """Two stable windows, then one that drifts (the topics the reference lacks)."""
    return log_rows(texts(TOPICS[:3], 2 * WINDOW, "a") + texts(("harvest", "king"), WINDOW, "b"))


def as_users_rows(rows):
    """The same queries under the user's own column names, times as text."""
    return [
        {"qid": r["id"], "question": r["text"], "language": r["lang"], "time": r["ts"]}
        for r in rows
    ]


def monitor(tmp_path, source, name, **kw):
    config = MonitorConfig(
        input=str(source), langs=["sw"], store=str(tmp_path / "store"), window=WINDOW,
        out_dir=str(tmp_path / name), n_permutations=99, n_bootstrap=199, **kw,
    )  # fmt: skip
    run_monitor(config, progress=False, encoder=ToyEncoder())
    rows = [json.loads(x) for x in (tmp_path / name / "drift.jsonl").read_text().splitlines()]
    tests = ("js", "mmd", "novelty")
    return [(r["window"], r["n"], r["drift"], r["start"], [r[t] for t in tests]) for r in rows]


def test_every_format_gives_the_windows_of_the_traffic_log(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    store_with_reference(tmp_path / "store")
    rows = queries()
    baseline = monitor(tmp_path, write_log(tmp_path / "log.jsonl", rows), "log")
    assert [w[2] for w in baseline] == [False, False, True]

    users = as_users_rows(rows)
    with (tmp_path / "q.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(users[0]))
        writer.writeheader()
        writer.writerows(users)
    with gzip.open(tmp_path / "q.jsonl.gz", "wt") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in users))
    (tmp_path / "q.json").write_text(json.dumps(users))
    shards = tmp_path / "shards"
    shards.mkdir()
    half = len(users) // 2
    pq.write_table(pa.Table.from_pylist(users[:half]), shards / "part-0.parquet")
    pq.write_table(pa.Table.from_pylist(users[half:]), shards / "part-1.parquet")
    datasets.Dataset.from_list(users).save_to_disk(str(tmp_path / "saved"))
    sources = {
        "csv": tmp_path / "q.csv",
        "jsonl.gz": tmp_path / "q.jsonl.gz",
        "json array": tmp_path / "q.json",
        "parquet shards": shards,
        "hf": f"hf:{tmp_path / 'saved'}",
    }
    for name, source in sources.items():
        found = monitor(tmp_path, source, name.replace(" ", "-"), columns=dict(MAPPING))
        assert found == baseline, name
    # text_field is the short form of columns.text, here beside the rest of the mapping.
    others = {k: v for k, v in MAPPING.items() if k != "text"}
    found = monitor(tmp_path, tmp_path / "q.csv", "short", columns=others, text_field="question")
    assert found == baseline


def test_the_cli_maps_columns_and_resumes_a_csv_after_its_cursor(tmp_path):
    store_with_reference(tmp_path / "store")
    users = as_users_rows(queries())
    path = tmp_path / "q.csv"

    def write(rows):
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(users[0]))
            writer.writeheader()
            writer.writerows(rows)

    write(users[: 2 * WINDOW])
    argv = [
        "monitor", f"input={path}", "langs=[sw]", f"store={tmp_path / 'store'}",
        f"out_dir={tmp_path / 'out'}", f"window={WINDOW}", "n_permutations=99",
        "n_bootstrap=199", "columns.text=question", "columns.ts=time", "columns.lang=language",
        "columns.id=qid", "encoder=toy",
    ]  # fmt: skip
    import lingualift.embed

    with pytest.MonkeyPatch.context() as mp:  # the CLI builds the encoder from its spec
        mp.setattr(lingualift.embed, "get_encoder", lambda spec, cache=True: ToyEncoder())
        assert main(argv) == 0
        state = json.loads((tmp_path / "out" / "state.json").read_text())
        assert state["cursor"] == ["q.csv", 2 * WINDOW + 1]
        assert state["settings"]["columns"]["text"] == "question"
        # The threshold left unset is the identifier's calibrated one, and says so.
        assert state["settings"]["min_confidence"] == DEFAULT_MIN_CONFIDENCE
        write(users)  # the file grew: only the new rows are read
        assert main(argv) == 0
    rows = (tmp_path / "out" / "drift.jsonl").read_text().splitlines()
    assert [json.loads(r)["drift"] for r in rows] == [False, False, True]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"]["rows"] == 3 * WINDOW


def test_bad_files_and_mappings_fail_in_one_sentence(tmp_path):
    store_with_reference(tmp_path / "store")
    users = as_users_rows(queries())

    def refused(match, source, **kw):
        with pytest.raises(LingualiftError, match=match):
            monitor(tmp_path, source, "bad", **kw)
        assert not (tmp_path / "bad").exists()

    fake = tmp_path / "q.jsonl.gz"
    fake.write_text("".join(json.dumps(r) + "\n" for r in users))
    refused("named as gzip-compressed JSON Lines but its bytes are JSON", fake)
    document = tmp_path / "doc.json"
    document.write_text(json.dumps({"queries": users}, indent=1))
    refused("holds one JSON object", document)
    plain = tmp_path / "q.jsonl"
    plain.write_text("".join(json.dumps(r) + "\n" for r in users))
    refused(r"has no 'text' column.*columns.text=<column>", plain)  # the mapping was forgotten
    refused("disagree", plain, columns={"text": "question"}, text_field="body")
