"""select_into and select_stage: a selection in a folder, and the same as a reusable stage."""

import json

import pytest

from lingualift.data import Record, read_records
from lingualift.errors import LingualiftError
from lingualift.workflows.selection import SELECTION_REPORT_KEYS, select_stage
from tests.compass.conftest import ToyEncoder

TOPICS = ("river", "market", "prayer", "harvest")


def records(prefix, topics, n, lang):
    return [
        Record(f"{prefix}{i}", f"{topics[i % len(topics)]} {prefix} {i}", lang) for i in range(n)
    ]


def test_a_selection_stage_is_written_once_and_reused(tmp_path):
    target = records("t", TOPICS[:2], 40, "sw")
    training = records("d", TOPICS[2:], 40, "sw")
    pool = records("p", TOPICS, 60, "fr") + records("q", TOPICS, 20, "de")
    kwargs = dict(fmt="jsonl", encoder=ToyEncoder(), n_clusters=4, seed=0, target_lang="sw",
                  dedup_threshold=None,
                  progress=False)  # fmt: skip
    stage = select_stage(tmp_path / "sel", "compass", target, training, pool, 10, **kwargs)
    assert set(stage.result) == set(SELECTION_REPORT_KEYS) and stage.result["n_selected"] == 10
    chosen = read_records(tmp_path / "sel" / "selection.jsonl")
    assert len(chosen) == 10 and all(r.text.split()[0] in TOPICS[:2] for r in chosen)
    for name in ("report.json", "report.png", "profile.safetensors", "stage.json"):
        assert (tmp_path / "sel" / name).is_file(), name
    assert json.loads((tmp_path / "sel" / "stage.json").read_text())["settings"]["encoder"] == "toy"
    again = select_stage(tmp_path / "sel", "compass", target, training, pool, 10, **kwargs)
    assert again.reused and again.result == stage.result
    with pytest.raises(LingualiftError, match="other settings"):
        select_stage(tmp_path / "sel", "compass", target, training, pool, 12, **kwargs)
