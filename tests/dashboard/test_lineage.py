"""The store's versions, parents and decisions as the dashboard reads them."""

from __future__ import annotations

from lingualift.adapters.store import AdapterStore
from lingualift.dashboard.lineage import read_lineage, version_number

from .conftest import make_store


def test_versions_parents_and_current(tmp_path):
    store = make_store(tmp_path / "store")
    lineage = read_lineage(store, "sw")
    assert lineage.current == 2 and lineage.problem is None
    assert [(v.version, v.parent, v.current) for v in lineage.versions] == [
        (1, None, False), (2, 1, True), (3, 2, False)
    ]  # fmt: skip
    v1, v2, v3 = lineage.versions
    assert v1.origin == "train" and v1.steps == 16 and v1.eval_loss == 4.9
    assert v2.origin == "ECDA update sw-w00002" and v3.problem is None


def test_each_decision_keeps_the_gates_evidence(tmp_path):
    lineage = read_lineage(make_store(tmp_path / "store"), "sw")
    assert [d.action for d in lineage.decisions] == ["save", "promote", "keep"]
    save, promote, keep = lineage.decisions
    assert save.evidence is None and save.current == 1
    assert (promote.version, promote.previous, promote.current) == (2, 1, 2)
    e = promote.evidence
    assert (e.gain, e.regret, e.min_gain, e.tolerance, e.relative) == (
        0.0081,
        0.004,
        0.0,
        0.02,
        False,
    )
    assert e.update == "sw-w00002" and e.unit == "nats/token"
    assert e.new_nll == {"current": 5.72, "candidate": 5.72 - 0.0081}
    assert e.windows[0]["window"] == 2 and e.windows[0]["rejected"] == ["novelty", "js", "mmd"]
    assert e.selection["n_selected"] == 16 and promote.reason.startswith("new-usage gain")
    # A kept candidate is the entry's version; current does not move.
    assert keep.version == 3 and keep.current == 2 and keep.evidence.regret == 0.05


def test_rollback_target_is_what_the_store_rolls_back_to(tmp_path):
    store = make_store(tmp_path / "store")
    assert read_lineage(store, "sw").rollback_target == 1
    store.promote("sw", 3)
    assert read_lineage(store, "sw").rollback_target == 2
    assert store.rollback("sw").version == 2
    lineage = read_lineage(store, "sw")
    assert lineage.decisions[-1].action == "rollback" and lineage.decisions[-1].reason == (
        "rolled back from v3"
    )
    assert lineage.rollback_target == 1 == store.rollback("sw").version
    assert read_lineage(store, "sw").rollback_target is None  # v1 was the first current
    assert read_lineage(store, "hi").rollback_target is None


def test_a_damaged_history_is_reported_not_raised(tmp_path):
    store = make_store(tmp_path / "store")
    history = tmp_path / "store" / "sw" / "history.jsonl"
    history.write_text("not json\n" + history.read_text())
    lineage = read_lineage(store, "sw")
    assert lineage.versions == [] and "history.jsonl:1" in lineage.problem


def test_a_version_with_broken_weights_says_so(tmp_path):
    store = make_store(tmp_path / "store")
    (tmp_path / "store" / "sw" / "v3" / "adapter_model.safetensors").write_bytes(b"\0\0")
    node = read_lineage(store, "sw").node(3)
    assert node is not None and "damaged" in node.problem


def test_a_language_only_the_monitor_knows_has_an_empty_lineage(tmp_path):
    lineage = read_lineage(AdapterStore(tmp_path / "empty"), "sw")
    assert (lineage.current, lineage.versions, lineage.decisions, lineage.problem) == (
        None, [], [], None
    )  # fmt: skip


def test_version_number():
    assert [version_number(v) for v in (3, "3", "v3", "sw/v3", None, "x", True)] == [
        3, 3, 3, 3, None, None, None
    ]  # fmt: skip
