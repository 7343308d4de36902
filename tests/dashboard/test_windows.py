"""The monitor's windows and the ECDA loop's state as the dashboard reads them."""

from __future__ import annotations

import json

from lingualift.dashboard.windows import locate, read_monitor

from .conftest import drift_row, write_jsonl


def test_an_ecda_folder_holds_the_monitor_and_the_loop(loop_files):
    assert locate(loop_files.ecda) == (loop_files.ecda / "monitor", loop_files.ecda / "loop.json")
    assert locate(loop_files.ecda / "monitor") == (loop_files.ecda / "monitor", None)
    view = read_monitor(loop_files.ecda)
    assert view.problems == [] and view.alpha == 0.05 and view.languages == ["sw"]
    windows = view.for_lang("sw")
    assert [w.window for w in windows] == [0, 1, 2, 3]
    assert [w.drift for w in windows] == [False, False, True, False]
    drifted = windows[2]
    assert drifted.rejected == ["novelty", "js", "mmd"] and drifted.first_level == 0.016667
    assert drifted.anchor == "sw-w2" and drifted.reference == "sw/v1"
    js = drifted.tests["js"]
    assert (js.statistic, js.threshold, js.pvalue, js.level, js.rejected) == (
        0.04, 0.07, 0.005, 0.025, True
    )  # fmt: skip
    assert js.detail == {"n_bootstrap": 199} and drifted.grew[0]["examples"][0] == "9 + 4 = 13"
    assert windows[3].reference == "sw/v2"
    (update,) = view.updates_of("sw")
    assert (update.id, update.status, update.candidate, update.windows) == (
        "sw-w00002", "promoted", "sw/v2", [2]
    )  # fmt: skip
    assert view.loop_state["sw"] == {"streak": 0, "next_window": 4}
    assert view.summary_languages()["sw"]["reference"] == "sw/v2"


def test_rows_past_the_states_count_are_not_shown(loop_files):
    """drift.jsonl is rewritten before state.json: after a crash between the two it holds rows the
    monitor will recompute."""
    monitor = loop_files.ecda / "monitor"
    state = json.loads((monitor / "state.json").read_text())
    (monitor / "state.json").write_text(json.dumps({**state, "n_windows": 3}))
    assert [w.window for w in read_monitor(loop_files.ecda).windows] == [0, 1, 2]


def test_damaged_files_are_named_not_raised(loop_files):
    monitor = loop_files.ecda / "monitor"
    with (monitor / "drift.jsonl").open("a") as handle:
        handle.write("{cut\n")
    (monitor / "state.json").unlink()
    (loop_files.ecda / "loop.json").write_text("{")
    view = read_monitor(loop_files.ecda)
    assert len(view.windows) == 4 and view.updates == []
    assert any("drift.jsonl:5 is not a drift row" in p for p in view.problems)
    assert any("loop.json could not be read" in p for p in view.problems)
    assert view.alpha == 0.05  # no settings left: Holm's largest level is alpha


def test_a_newer_loop_state_and_a_skipped_window_are_shown(tmp_path):
    """Keys a newer loop adds (e.g. the windows a new reference was settled on) appear per
    language; a time window too small to test has no tests."""
    skipped = {"lang": "sw", "window": 0, "n": 3, "decision": {"drift": False, "skipped": "3 < 20"},
               "drift": False, "grew": [], "shrank": []}  # fmt: skip
    write_jsonl(tmp_path / "drift.jsonl", [skipped, drift_row(1, "sw/v1", {"js": 0.4, "mmd": 0.5,
                                                                           "novelty": 1.0})])  # fmt: skip
    (tmp_path / "loop.json").write_text(json.dumps({
        "format": "lingualift-ecda-loop/2", "updates": [{"id": "x", "lang": "sw"}],
        "settling": {"sw": {"windows": [5, 6], "until": 7}}, "streak": {"sw": 1},
    }))  # fmt: skip
    view = read_monitor(tmp_path)
    assert view.windows[0].skipped == "3 < 20" and view.windows[0].tests == {}
    assert view.loop_state == {"sw": {"settling": {"windows": [5, 6], "until": 7}, "streak": 1}}
    assert view.updates[0].status == "?" and view.problems == []


def test_a_folder_not_there_yet(tmp_path):
    view = read_monitor(tmp_path / "runs" / "ecda")
    assert view.windows == [] and "does not exist" in view.problems[0]
