"""The ECDA loop: its own state, plans saved before the monitor moves on, outcomes applied once.

A fake updater stands in for the five-stage update (tested end to end in
tests/jobs/test_ecda.py), so these tests run on the toy encoder in seconds.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lingualift.adapters.store import AdapterStore
from lingualift.compass.embedding import EmbeddedSet, embed_texts
from lingualift.continual.deployed import load_reference
from lingualift.continual.log_monitor import LogMonitor, MonitorSettings
from lingualift.continual.loop import EcdaLoop, LoopSettings, PlannedUpdate, UpdateOutcome
from lingualift.continual.reference import Reference
from lingualift.errors import LingualiftError
from tests.compass.conftest import ToyEncoder

from .helpers import TOPICS, fake_peft, log_rows, store_with_reference, texts, write_log

WINDOW = 40
LATER = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
SETTINGS = MonitorSettings(window=WINDOW, n_permutations=99, n_bootstrap=199)
FINGERPRINT = {"test": 1}


class FakeUpdater:
    """Keeps (or promotes a new version built from the update's queries) and counts calls."""

    def __init__(self, store: AdapterStore, promote: bool) -> None:
        self.store, self.promote, self.calls = store, promote, []

    def __call__(self, update: PlannedUpdate) -> UpdateOutcome:
        self.calls.append(update.id)
        done = [h for h in self.store.history(update.lang) if h.get("update") == update.id]
        if done:  # decided before a crash: the real updater reuses its decide stage
            current = f"{update.lang}/v{done[0]['current']}"
            return UpdateOutcome("promoted" if self.promote else "kept", current, current, "again")
        if not self.promote:
            self.store.record(update.lang, {"action": "keep", "update": update.id})
            return UpdateOutcome("kept", "sw/v9", update.parent, "no gain")
        vectors, name = embed_texts(update.texts, ToyEncoder(), progress=False)
        reference = Reference.build(
            EmbeddedSet(vectors, name), "sw", texts=update.texts, n_clusters=3
        )

        def write(folder):
            fake_peft(folder)
            reference.write(folder / "reference")

        version = self.store.save("sw", writer=write, promote=False)
        self.store.promote("sw", version.version, evidence={"update": update.id})
        return UpdateOutcome("promoted", version.name, version.name, "gain")


@pytest.fixture
def world(tmp_path):
    store, _ = store_with_reference(tmp_path / "store")
    logs = tmp_path / "logs"
    stable = log_rows(texts(TOPICS[:3], 2 * WINDOW, "a"))
    shifted = log_rows(texts(("harvest", "king"), 2 * WINDOW, "b"))
    write_log(logs / "seg-0001.jsonl", stable + shifted)
    return {"store": store, "logs": logs, "out": tmp_path / "out"}


def open_both(world, **loop_settings):
    store = AdapterStore(world["store"].root)
    references = {"sw": load_reference(store, "sw")}
    monitor = LogMonitor.open(
        world["out"] / "monitor", str(world["logs"]), references, SETTINGS, FINGERPRINT,
        encoder=ToyEncoder(), progress=False, keep_recent=3,
    )  # fmt: skip
    loop = EcdaLoop.open(
        world["out"] / "loop.json", LoopSettings(**loop_settings), store, FINGERPRINT,
        progress=False,
    )  # fmt: skip
    return monitor, loop


def loop_state(world):
    return json.loads((world["out"] / "loop.json").read_text())


def test_a_kept_update_cools_down_and_the_loop_keeps_its_own_state(world):
    monitor, loop = open_both(world, cooldown_windows=5)
    updater = FakeUpdater(world["store"], promote=False)
    loop.run(monitor, updater)
    assert updater.calls == ["sw-w00002"]  # window 3 drifts too, inside the cooldown
    [update] = loop.updates
    assert update["status"] == "kept" and update["windows"] == [2] and update["parent"] == "sw/v1"
    state = loop_state(world)
    assert state["cooldown"] == {"sw": 8} and state["next_window"] == {"sw": 4}
    assert state["updates"][0]["texts"] == []  # the queries go once the update is done
    evidence = state["updates"][0]["evidence"]
    assert evidence[0]["window"] == 2 and evidence[0]["drift"] and "mmd" in evidence[0]["pvalues"]
    # The monitor's state is its own: it knows nothing of updates, streaks or cooldowns.
    monitor_state = json.loads((world["out"] / "monitor" / "state.json").read_text())
    assert not {"extra", "updates", "streak", "cooldown"} & set(monitor_state)
    assert [w["index"] for w in monitor.recent_usage("sw", drifted_only=False)] == [3]


def test_a_promotion_switches_the_monitor_to_the_new_reference(world):
    """settle_rows=0: the next window is tested at once against the update's own reference."""
    monitor, loop = open_both(world, settle_rows=0)
    loop.run(monitor, FakeUpdater(world["store"], promote=True))
    assert loop.updates[0]["status"] == "promoted" and world["store"].current_version("sw") == 2
    rows = monitor.window_rows("sw")
    assert [r["reference"] for r in rows] == ["sw/v1"] * 3 + ["sw/v2"] and "mmd" in rows[3]


def settling_world(world):
    """After the two stable and the first shifted window, four more shifted windows."""
    more = log_rows(texts(("harvest", "king"), 4 * WINDOW, "c"), start=LATER)
    write_log(world["logs"] / "seg-0002.jsonl", more)
    return world


def test_after_a_promotion_the_reference_settles_before_windows_are_tested(world):
    """Windows after a promotion are held untested until they hold settle_rows queries; the
    reference of those queries is saved in the version folder and the next windows are tested
    against it (the update's reference of one window is never tested against)."""
    settling_world(world)
    monitor, loop = open_both(world, settle_rows=100)
    loop.run(monitor, FakeUpdater(world["store"], promote=True))
    assert [u["status"] for u in loop.updates] == ["promoted"]
    rows = monitor.window_rows("sw")
    held, tested = rows[3:6], rows[6:]
    assert [r["window"] for r in held] == [3, 4, 5] and len(tested) == 2
    for number, row in enumerate(held, start=1):
        assert not {"js", "mmd", "novelty"} & set(row) and not row["drift"]
        assert row["decision"]["settling"] == "sw/v2"
        assert f"{40 * number} of 100 queries" in row["decision"]["skipped"]
    assert "settled" in held[-1]["decision"]["skipped"]
    assert all("mmd" in r and r["reference"] == "sw/v2" for r in tested)
    saved = load_reference(world["store"], "sw")  # in v2's folder, replacing the provisional one
    assert saved.version == "sw/v2" and sum(saved.histogram) == 120
    assert saved.settings["settled_from"] == {"windows": [3, 4, 5], "queries": 120}
    assert monitor.summary()["settled_references"] == [
        {"lang": "sw", "version": "sw/v2", "windows": [3, 4, 5], "queries": 120}
    ]
    assert monitor.summary()["languages"]["sw"]["settling"] is None


def test_a_crash_while_settling_resumes_settling(world, monkeypatch):
    """Killed while saving the settled reference: the rerun keeps the queries the state had
    gathered, reads the rest again after the cursor and settles from windows 3-5, once each."""
    from lingualift.continual import log_monitor

    settling_world(world)
    monkeypatch.setattr(log_monitor, "CHUNK", WINDOW)  # the state is saved after every window
    real_save = Reference.save

    def crash(self, folder, overwrite=False):
        raise RuntimeError("killed")

    monkeypatch.setattr(Reference, "save", crash)
    monitor, loop = open_both(world, settle_rows=100)
    with pytest.raises(RuntimeError, match="killed"):
        loop.run(monitor, FakeUpdater(world["store"], promote=True))
    state = json.loads((world["out"] / "monitor" / "state.json").read_text())
    assert state["settling"]["sw"]["windows"] == [3, 4] and state["stream"]["held"]["sw"]
    assert len(state["settling"]["sw"]["texts"]) == 2 * WINDOW
    assert world["store"].current_version("sw") == 2
    monkeypatch.setattr(Reference, "save", real_save)
    monitor, loop = open_both(world, settle_rows=100)
    updater = FakeUpdater(world["store"], promote=True)
    loop.run(monitor, updater)
    assert updater.calls == []  # the promotion was done; only the settling went on
    rows = monitor.window_rows("sw")
    assert [r["window"] for r in rows] == list(range(8))
    assert monitor.settled_references == [
        {"lang": "sw", "version": "sw/v2", "windows": [3, 4, 5], "queries": 120}
    ]
    assert load_reference(world["store"], "sw").settings["settled_from"]["windows"] == [3, 4, 5]
    assert all("mmd" in r for r in rows[6:])


def test_a_crash_after_the_plan_counts_no_window_twice(world, monkeypatch):
    """The plan is saved before the monitor saves past its window; after a crash there the
    monitor reads the window again, and the loop does not count it (or plan it) again."""
    monitor, loop = open_both(world)
    real_save = LogMonitor.save

    def crash(self):
        raise RuntimeError("killed")

    monkeypatch.setattr(LogMonitor, "save", crash)
    with pytest.raises(RuntimeError, match="killed"):
        loop.run(monitor, FakeUpdater(world["store"], promote=False))
    assert loop_state(world)["updates"][0]["status"] == "pending"
    assert not (world["out"] / "monitor" / "state.json").exists()
    monkeypatch.setattr(LogMonitor, "save", real_save)
    monitor, loop = open_both(world)
    updater = FakeUpdater(world["store"], promote=False)
    loop.run(monitor, updater)
    assert updater.calls == ["sw-w00002"]  # the pending update, once; not planned again
    assert [u["id"] for u in loop.updates] == ["sw-w00002"]
    assert [r["window"] for r in monitor.window_rows("sw")] == [0, 1, 2, 3]


def test_an_outcome_applied_twice_changes_nothing(world, monkeypatch):
    """A crash between the monitor's save and the loop's: the rerun repeats the last step."""
    monitor, loop = open_both(world, cooldown_windows=5)
    real_save = EcdaLoop.save
    saves = {"n": 0}

    def crash_after_the_update(self):
        saves["n"] += 1
        if any(u["status"] != "pending" for u in self.updates):
            raise RuntimeError("killed")
        real_save(self)

    monkeypatch.setattr(EcdaLoop, "save", crash_after_the_update)
    with pytest.raises(RuntimeError, match="killed"):
        loop.run(monitor, FakeUpdater(world["store"], promote=False))
    monkeypatch.setattr(EcdaLoop, "save", real_save)
    before = json.loads((world["out"] / "monitor" / "state.json").read_text())
    monitor, loop = open_both(world, cooldown_windows=5)
    updater = FakeUpdater(world["store"], promote=False)
    loop.run(monitor, updater)
    assert updater.calls == ["sw-w00002"] and loop.updates[0]["status"] == "kept"
    assert loop_state(world)["cooldown"] == {"sw": 8}
    assert [h["action"] for h in world["store"].history("sw")].count("keep") == 1
    assert before["stream"]["recent"]["sw"] == []  # the monitor had already forgotten them


def test_the_loop_state_refuses_other_settings_and_damage(world):
    monitor, loop = open_both(world)
    loop.run(monitor, FakeUpdater(world["store"], promote=False))
    with pytest.raises(LingualiftError, match="other settings"):
        EcdaLoop.open(world["out"] / "loop.json", LoopSettings(), world["store"], {"test": 2})
    fresh = EcdaLoop.open(
        world["out"] / "loop.json", LoopSettings(), world["store"], {"test": 2}, overwrite=True
    )
    assert fresh.updates == []
    (world["out"] / "loop.json").write_text("{not json")
    with pytest.raises(LingualiftError, match="loop.json is damaged"):
        EcdaLoop.open(world["out"] / "loop.json", LoopSettings(), world["store"], FINGERPRINT)
    with pytest.raises(LingualiftError, match="usage_windows must be at least trigger_windows"):
        LoopSettings(trigger_windows=3, usage_windows=2)
