"""ECDA reads its queries and its pool through the one reader, with the same column mapping as
every verb (no model is loaded: the windows here do not drift, so no update runs)."""

from __future__ import annotations

import csv
import json

import pytest

from lingualift.data import Record, write_records
from lingualift.errors import LingualiftError
from lingualift.workflows.ecda import EcdaConfig, ecda_over_log
from tests.compass.conftest import ToyEncoder
from tests.continual.helpers import TOPICS, log_rows, store_with_reference, texts, write_log

WINDOW = 40


def write_csv(path, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def world(tmp_path, tiny_model_dir):
    store_with_reference(tmp_path / "store")
    training = write_records(
        [Record(f"t{i}", f"river old {i}", "sw") for i in range(10)], tmp_path / "train.jsonl"
    )
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(json.dumps({"text": f"river held {i}"}) + "\n" for i in range(4)))
    rows = log_rows(texts(TOPICS[:3], 2 * WINDOW, "a"))  # two stable windows
    pool = [
        {"sentence": f"{TOPICS[i % 6]} pool {i}", "language": "fr", "pid": f"p{i}"}
        for i in range(30)
    ]
    return {
        "log": write_log(tmp_path / "log.jsonl", rows),
        "csv": write_csv(
            tmp_path / "q.csv",
            [{"question": r["text"], "language": r["lang"], "time": r["ts"]} for r in rows],
        ),
        "pool": write_csv(tmp_path / "pool.csv", pool),
        "training": str(training),
        "heldout": str(heldout),
        "model": str(tiny_model_dir),
    }


def run(tmp_path, world, source, name, **kw):
    # The pre-load check reads the base's config; no update runs, so no weights load.
    config = EcdaConfig(
        input=str(source), langs=["sw"], store=str(tmp_path / "store"), model=world["model"],
        pool=str(world["pool"]), pool_fields={"text": "sentence", "lang": "language", "id": "pid"},
        training_data=world["training"], old_heldout=world["heldout"], window=WINDOW,
        n_permutations=99, n_bootstrap=199, out_dir=str(tmp_path / name), **kw,
    )  # fmt: skip
    result = ecda_over_log(config, progress=False, encoder=ToyEncoder())
    drift = (tmp_path / name / "monitor" / "drift.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in drift]
    return result, [(r["window"], r["n"], r["drift"], r["js"], r["mmd"]) for r in rows]


def test_queries_and_pool_in_the_users_formats_with_one_mapping(tmp_path, world):
    import gzip

    import datasets

    _, baseline = run(tmp_path, world, world["log"], "log")
    assert [w[2] for w in baseline] == [False, False]
    mapping = {"text": "question", "lang": "language", "ts": "time"}
    result, found = run(tmp_path, world, world["csv"], "csv", columns=mapping)
    assert found == baseline and result.updates == []
    assert tuple(result.summary["cursor"]) == ("q.csv", 2 * WINDOW + 1)

    with world["csv"].open(newline="", encoding="utf-8") as handle:
        users = list(csv.DictReader(handle))
    with gzip.open(tmp_path / "q.jsonl.gz", "wt") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in users))
    (tmp_path / "q.json").write_text(json.dumps(users, indent=1))
    datasets.Dataset.from_list(users).save_to_disk(str(tmp_path / "saved"))
    for source in ("q.jsonl.gz", "q.json", "hf:saved"):
        spec = f"hf:{tmp_path / 'saved'}" if source == "hf:saved" else tmp_path / source
        result, found = run(tmp_path, world, spec, f"out-{source}", columns=mapping)
        assert found == baseline and result.updates == [], source


def test_a_pool_without_the_mapped_columns_is_one_sentence(tmp_path, world):
    with pytest.raises(LingualiftError, match=r"pool.csv:2: no 'text' column .*pool_fields.text"):
        config = EcdaConfig(
            input=str(world["log"]), langs=["sw"], store=str(tmp_path / "store"), model="unused",
            pool=str(world["pool"]), training_data=world["training"],
            old_heldout=world["heldout"], window=WINDOW, out_dir=str(tmp_path / "bad"),
        )  # fmt: skip
        ecda_over_log(config, progress=False, encoder=ToyEncoder())
    assert not (tmp_path / "bad").exists()
    unlabelled = write_csv(tmp_path / "p.csv", [{"text": "river x"}, {"text": "market y"}])
    with pytest.raises(LingualiftError, match="pool_fields.default_lang=<code>"):
        config = EcdaConfig(
            input=str(world["log"]), langs=["sw"], store=str(tmp_path / "store"), model="unused",
            pool=str(unlabelled), training_data=world["training"],
            old_heldout=world["heldout"], window=WINDOW, out_dir=str(tmp_path / "bad"),
        )  # fmt: skip
        ecda_over_log(config, progress=False, encoder=ToyEncoder())
