"""What an update trains on: the lineage's data, the drifted queries kept by a version."""

from __future__ import annotations

import pytest

from lingualift.adapters.store import AdapterStore
from lingualift.continual.update import USAGE_FILE, lineage_data, replay_count, split_usage
from lingualift.data import Record, write_records
from lingualift.errors import LingualiftError

from .helpers import fake_peft


def test_the_lineage_holds_every_selection_and_the_queries_a_version_trained_on(tmp_path):
    store = AdapterStore(tmp_path / "store")
    train = write_records([Record(f"t{i}", f"train {i}", "sw") for i in range(4)],
                          tmp_path / "train.jsonl")  # fmt: skip
    v1 = store.save("sw", writer=fake_peft, promote=True,
                    card={"data": [{"role": "train", "path": str(train)}]})  # fmt: skip

    def ecda_version(folder):
        fake_peft(folder)
        write_records([Record("s0", "selected 0", "fr")], folder / "selection.jsonl")
        write_records([Record("target-0", "drifted query 0", "sw")], folder / USAGE_FILE)

    v2 = store.save("sw", writer=ecda_version, card={"parent": v1.name}, promote=True)
    texts = [r.text for r in lineage_data(store, v2)]
    assert texts == ["train 0", "train 1", "train 2", "train 3", "selected 0", "drifted query 0"]


def test_the_gates_split_never_reaches_the_target_and_replay_is_a_share_of_the_mix():
    texts = [f"query {i}" for i in range(50)] + ["query 3", "  "]
    target, held = split_usage(texts, 0.2, seed=1)
    assert len(held) == 10 and len(target) == 40 and not set(target) & set(held)
    assert split_usage(texts, 0.2, seed=1) == (target, held)  # a rerun splits the same way
    assert replay_count(16 + 40, 0.5, 1000) == 56 and replay_count(56, 0.5, 20) == 20


def test_a_shifcon_version_is_refused_in_one_sentence(tmp_path):
    store = AdapterStore(tmp_path / "store")
    version = store.save("sw", writer=fake_peft, promote=True,
                         card={"method": "shifcon", "data": {"pairs": 4}})  # fmt: skip
    with pytest.raises(LingualiftError, match="is a ShifCon adapter") as info:
        lineage_data(store, version)
    assert str(info.value).count(". ") == 0
