"""The log monitor owns its state: state()/restore(), its files, and the lines it cannot use."""

from __future__ import annotations

import json

import pytest

from lingualift.continual.deployed import load_reference
from lingualift.continual.log_monitor import LogMonitor, MonitorSettings
from lingualift.errors import LingualiftError
from tests.compass.conftest import ToyEncoder

from .helpers import TOPICS, log_rows, store_with_reference, texts, write_log

WINDOW = 40
SETTINGS = MonitorSettings(window=WINDOW, n_permutations=99, n_bootstrap=199)


@pytest.fixture(autouse=True)
def store(tmp_path):
    return store_with_reference(tmp_path / "store")[0]


def open_monitor(tmp_path, source, **options):
    from lingualift.adapters.store import AdapterStore

    references = {"sw": load_reference(AdapterStore(tmp_path / "store"), "sw")}
    return LogMonitor.open(
        tmp_path / "out", str(source), references, SETTINGS, {"test": 1},
        encoder=ToyEncoder(), progress=False, **options,
    )  # fmt: skip


def test_state_restores_a_monitor_exactly(tmp_path):
    log = write_log(tmp_path / "log.jsonl", log_rows(texts(TOPICS[:3], 2 * WINDOW + 10, "a")))
    first = open_monitor(tmp_path, log)
    reports = first.poll(final=True)
    assert [r.index for r in reports] == [0, 1] and first.windows_closed("sw") == 2
    state = first.state()
    assert json.loads((tmp_path / "out" / "state.json").read_text()) == json.loads(
        json.dumps(state)
    )
    again = open_monitor(tmp_path, log)
    assert again.state() == state and again.window_rows("sw") == first.window_rows("sw")
    assert len(again.recent_usage("sw", drifted_only=False)) == 2
    assert again.poll(final=True) == []  # nothing after the cursor
    # The public methods an update uses change the state the next save writes.
    again.reset_recent("sw")
    again.save()
    assert open_monitor(tmp_path, log).recent_usage("sw", drifted_only=False) == []


def test_a_damaged_state_is_one_sentence(tmp_path):
    log = write_log(tmp_path / "log.jsonl", log_rows(texts(TOPICS[:3], WINDOW, "a")))
    out = tmp_path / "out"
    out.mkdir()
    for content, what in (
        ('{"format": "lingualift-monitor-st', "line 1: Unterminated string"),
        (json.dumps({"format": "lingualift-monitor-state/1", "settings": {"test": 1}}),
         "KeyError: 'cursor'"),
    ):  # fmt: skip
        (out / "state.json").write_text(content)
        with pytest.raises(LingualiftError, match="state.json is damaged") as caught:
            open_monitor(tmp_path, log)
        assert what in str(caught.value) and "delete it" in str(caught.value)
    (out / "state.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(LingualiftError, match="byte 0 is not UTF-8"):
        open_monitor(tmp_path, log)


def test_unknown_languages_and_bad_utf8_are_counted_and_named(tmp_path):
    rows = log_rows(texts(TOPICS[:3], WINDOW, "a"))
    klingon = {**rows[0], "lang": "xx-klingon"}
    lines = [json.dumps(r) for r in rows[:10]] + [json.dumps(klingon)]
    raw = "\n".join(lines).encode() + b'\n{"text": "caf\xe9", "lang": "sw"}\n'
    raw += "\n".join(json.dumps(r) for r in rows[10:]).encode() + b"\n"
    log = tmp_path / "log.jsonl"
    log.write_bytes(raw)
    monitor = open_monitor(tmp_path, log)
    assert len(monitor.poll(final=True)) == 1  # the 40 good rows still make their window
    malformed = monitor.summary()["malformed"]
    assert malformed == {
        "count": 2,
        "lines": [
            "log.jsonl:11: unknown language 'xx-klingon'",
            "log.jsonl:12: byte 13 (b'\\xe9') is not UTF-8",
        ],
    }
    assert "2 malformed lines skipped" in monitor.summary()["notes"][0]
    # Nothing was replaced silently: the undecodable row is in no window.
    texts_seen = monitor.recent_usage("sw", drifted_only=False)[0]["texts"]
    assert len(texts_seen) == WINDOW and not any(t.startswith("caf") for t in texts_seen)


def test_a_log_with_no_readable_line_is_refused_with_nothing_written(tmp_path):
    # More lines than one chunk: a new monitor still saves nothing before its first query.
    bad = [json.dumps({**log_rows(["x"])[0], "lang": "qqq"})] * 1001
    log = tmp_path / "bad.jsonl"
    log.write_text("\n".join(bad) + "\n")
    monitor = open_monitor(tmp_path, log)
    with pytest.raises(LingualiftError, match="has no readable line") as caught:
        monitor.poll(final=True)
    assert "all 1001 lines were skipped (first: bad.jsonl:1: unknown language 'qqq')" in str(
        caught.value
    )
    assert not (tmp_path / "out").exists()
    # Followed (final=False), the same log is no error: later segments may be readable.
    assert open_monitor(tmp_path, log).poll(final=False) == []
    assert not (tmp_path / "out").exists()
