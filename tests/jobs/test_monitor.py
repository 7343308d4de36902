"""The monitor job over traffic-log segments: drift found, resume without double counting, bad input."""

from __future__ import annotations

import json

import pytest

from lingualift.cli import main
from lingualift.errors import LingualiftError
from lingualift.jobs.monitor import MonitorConfig, run_monitor
from tests.compass.conftest import ToyEncoder
from tests.continual.helpers import TOPICS, log_rows, store_with_reference, texts, write_log

WINDOW = 40


def config(tmp_path, source, **kw):
    settings = dict(
        input=str(source), langs=["sw"], store=str(tmp_path / "store"), window=WINDOW,
        out_dir=str(tmp_path / "out"), n_permutations=99, n_bootstrap=199,
    )  # fmt: skip
    return MonitorConfig(**{**settings, **kw})


def read_rows(tmp_path):
    return [json.loads(x) for x in (tmp_path / "out" / "drift.jsonl").read_text().splitlines()]


def test_segments_drift_resume_and_counts(tmp_path):
    store_with_reference(tmp_path / "store")
    logs = tmp_path / "logs"
    stable = log_rows(texts(TOPICS[:3], 2 * WINDOW, "a"))
    null_text = {**log_rows(["x"])[0], "text": None}
    untagged = {**log_rows(["river q 1"])[0], "lang": None}
    write_log(logs / "seg-0001.jsonl", stable, ["{not json", json.dumps(null_text)])
    shifted = log_rows(texts(("harvest", "king"), WINDOW, "b"))
    write_log(logs / "seg-0002.jsonl", [*shifted, untagged])
    write_log(logs / "seg-0003.jsonl.partial", log_rows(texts(TOPICS[:3], WINDOW, "c")))

    result = run_monitor(config(tmp_path, logs), progress=False, encoder=ToyEncoder())
    rows = read_rows(tmp_path)
    assert [r["window"] for r in rows] == [0, 1, 2] and [r["drift"] for r in rows] == [
        False, False, True,
    ]  # fmt: skip
    grown = rows[2]["grew"][0]
    assert grown["examples"][0].split()[0] in ("harvest", "king") and grown["change"] > 0.2
    assert rows[2]["reference"] == "sw/v1" and rows[2]["first"] == "seg-0002.jsonl:1"
    summary = result.summary
    assert summary["malformed"] == {"count": 1, "lines": [
        "seg-0001.jsonl:81: malformed JSON (Expecting property name enclosed in double quotes)"
    ]}  # fmt: skip
    assert summary["counts"]["no_text"] == 1 and "had no text" in summary["notes"][0]
    assert summary["counts"]["rows"] == 3 * WINDOW + 2  # the .partial segment was not read
    assert (tmp_path / "out" / "drift.png").stat().st_size > 0

    # A rerun with nothing new adds nothing; a closed segment adds only its windows.
    run_monitor(config(tmp_path, logs), progress=False, encoder=ToyEncoder())
    assert len(read_rows(tmp_path)) == 3
    (logs / "seg-0003.jsonl.partial").rename(logs / "seg-0003.jsonl")
    again = run_monitor(config(tmp_path, logs), progress=False, encoder=ToyEncoder())
    rows = read_rows(tmp_path)
    assert [r["window"] for r in rows] == [0, 1, 2, 3] and len(again.reports) == 1
    assert (
        again.summary["counts"]["rows"] == 4 * WINDOW + 2
        and again.summary["malformed"]["count"] == 1
    )


def test_time_windows_and_a_crash_between_the_two_writes(tmp_path):
    store_with_reference(tmp_path / "store")
    # 150 queries a minute apart: hours 0, 1 (60 each) and 30 in hour 2 (left open).
    log = write_log(tmp_path / "log.jsonl", log_rows(texts(TOPICS[:3], 150, "t")))
    run_monitor(config(tmp_path, log, window_time="1h"), progress=False, encoder=ToyEncoder())
    rows = read_rows(tmp_path)
    assert [(r["window"], r["n"], r["start"]) for r in rows] == [
        (0, 60, "2026-01-01T00:00:00+00:00"), (1, 60, "2026-01-01T01:00:00+00:00"),
    ]  # fmt: skip
    # drift.jsonl got a row the state never counted (a crash between the writes): dropped.
    with (tmp_path / "out" / "drift.jsonl").open("a") as handle:
        handle.write(json.dumps({**rows[-1], "window": 99}) + "\n")
    run_monitor(
        config(tmp_path, log, window_time="1h", flush=True), progress=False, encoder=ToyEncoder()
    )
    rows = read_rows(tmp_path)
    assert [r["window"] for r in rows] == [0, 1, 2] and rows[2]["n"] == 30
    with pytest.raises(LingualiftError, match="other settings"):
        run_monitor(config(tmp_path, log, alpha=0.04), progress=False, encoder=ToyEncoder())


def test_bad_input_one_sentence_nothing_written(tmp_path):
    store_with_reference(tmp_path / "store")
    out = tmp_path / "out"

    def refused(match, source, **kw):
        with pytest.raises(LingualiftError, match=match):
            run_monitor(config(tmp_path, source, **kw), progress=False, encoder=ToyEncoder())
        assert not out.exists()

    refused("does not exist", tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    refused("is empty", empty)
    (tmp_path / "blank.jsonl").write_text("\n\n")
    refused("holds no queries", tmp_path / "blank.jsonl")
    (tmp_path / "nolog").mkdir()
    refused("no closed segment", tmp_path / "nolog")
    no_text = write_log(tmp_path / "notext.jsonl", log_rows(texts(TOPICS, 50), text=False))
    refused("has no 'text' column", no_text)
    log = write_log(tmp_path / "log.jsonl", log_rows(texts(TOPICS, 50)))
    refused("at least 20 queries per window", log, window=10)
    refused("No adapter for language 'hi'", log, langs=["hi"])
    with pytest.raises(LingualiftError, match="was built with encoder toy"):
        run_monitor(config(tmp_path, log, encoder="lm:/nonexistent"), progress=False,
                    encoder=_Other())  # fmt: skip

    # The CLI: one sentence on stderr, exit code 2.
    code = main(["monitor", f"input={tmp_path / 'missing.jsonl'}", "langs=[sw]",
                 f"store={tmp_path / 'store'}", f"out_dir={out}"])  # fmt: skip
    assert code == 2 and not out.exists()


def test_language_without_reference(tmp_path, capsys):
    from lingualift.adapters.store import AdapterStore
    from tests.continual.helpers import fake_peft

    AdapterStore(tmp_path / "store").save("hi", writer=fake_peft, promote=True)
    log = write_log(tmp_path / "log.jsonl", log_rows(texts(TOPICS, 50), lang="hi"))
    code = main(["monitor", f"input={log}", "langs=[hi]", f"store={tmp_path / 'store'}",
                 f"out_dir={tmp_path / 'out'}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "hi/v1 has no reference profile" in err and err.count("\n") == 1


class _Other(ToyEncoder):
    name = "other-toy"


def test_parquet_log(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    store_with_reference(tmp_path / "store")
    rows = log_rows(texts(TOPICS[:3], 2 * WINDOW, "p"))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "log.parquet")
    result = run_monitor(config(tmp_path, tmp_path / "log.parquet"), progress=False,
                         encoder=ToyEncoder())  # fmt: skip
    assert [r["last"] for r in read_rows(tmp_path)] == ["log.parquet:40", "log.parquet:80"]
    assert result.summary["cursor"] == ("log.parquet", 80)


def test_standard_input_continues_pending_windows(tmp_path, monkeypatch):
    import io

    store_with_reference(tmp_path / "store")
    rows = log_rows(texts(TOPICS[:3], 60, "s"))
    first = "".join(json.dumps(r) + "\n" for r in rows[:50])
    second = "".join(json.dumps(r) + "\n" for r in rows[50:])
    monkeypatch.setattr("sys.stdin", io.StringIO(first))
    run_monitor(config(tmp_path, "-"), progress=False, encoder=ToyEncoder())
    assert [r["n"] for r in read_rows(tmp_path)] == [WINDOW]  # 10 queries left pending
    monkeypatch.setattr("sys.stdin", io.StringIO(second))
    result = run_monitor(config(tmp_path, "-"), progress=False, encoder=ToyEncoder())
    rows_out = read_rows(tmp_path)
    assert [r["window"] for r in rows_out] == [0] and result.summary["counts"]["rows"] == 60
    state = json.loads((tmp_path / "out" / "state.json").read_text())
    assert len(state["stream"]["pending"]["sw"]) == 20  # 10 carried over + 10 new
