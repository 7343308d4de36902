import json

import numpy as np
import pytest

from lingualift.cli import main
from lingualift.compass import EmbeddedSet, GapSampler, embed_texts
from lingualift.compass.embedding import count_tokens
from lingualift.compass.typology import uriel_code
from lingualift.embed import CachedEncoder, EmbeddingCache
from lingualift.errors import LingualiftError

from .conftest import ToyEncoder


def test_memmap_embedding_carries_the_encoder_name(tmp_path):
    encoder = CachedEncoder(ToyEncoder(), EmbeddingCache(tmp_path / "c.sqlite"))
    texts = [f"river {i}" for i in range(20)]
    vectors, name = embed_texts(texts, encoder, memmap_path=tmp_path / "pool.npy", progress=False)
    assert isinstance(vectors, np.memmap) and name == "toy"
    loaded = EmbeddedSet.load(tmp_path / "pool.npy")
    assert loaded.encoder == "toy" and loaded.dim == 16
    np.testing.assert_allclose(np.asarray(loaded.vectors), ToyEncoder().encode(texts), atol=1e-6)
    assert not list(tmp_path.glob(".*tmp"))


def test_ray_backend_matches_local(tmp_path):
    pytest.importorskip("ray")
    import ray

    texts = [f"{w} text {i}" for i in range(24) for w in ("river",)]
    local, _ = embed_texts(texts, ToyEncoder(), progress=False)
    cached = CachedEncoder(ToyEncoder(), EmbeddingCache(tmp_path / "c.sqlite"))
    try:
        remote, name = embed_texts(texts, cached, backend="ray", batch_size=8, concurrency=1)
    finally:
        ray.shutdown()
    np.testing.assert_allclose(remote, local, atol=1e-6)
    assert name == "toy" and cached.misses == 24
    # Second call: every vector comes from the cache, Ray is not started again.
    again, _ = embed_texts(texts, cached, backend="ray")
    np.testing.assert_allclose(again, local, atol=1e-6)
    assert cached.hits == 24 and not ray.is_initialized()


def test_ray_backend_uses_a_session_started_first(tmp_path, capfd):
    """A Ray session already open (here: started by the test) is used, not a new one; Ray Data
    runs with the current API (no deprecated concurrency=) and prints no progress blocks."""
    pytest.importorskip("ray")
    import warnings

    import ray

    from lingualift.compass.embedding import connect_ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        texts = [f"river bank {i}" for i in range(6)]
        capfd.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            remote, _ = embed_texts(texts, ToyEncoder(), backend="ray", batch_size=4, concurrency=1)
        assert not [w for w in caught if "concurrency" in str(w.message)]
        err = capfd.readouterr().err
        assert "MapBatches" not in err and "Running Dataset" not in err, err[-500:]
        assert ray.get_runtime_context().gcs_address == address
        assert connect_ray(2) == "existing session"
    finally:
        ray.shutdown()
    np.testing.assert_allclose(remote, ToyEncoder().encode(texts), atol=1e-6)


@pytest.mark.slow
def test_ray_backend_joins_the_cluster_ray_address_names(tmp_path, monkeypatch):
    """A running cluster (another process's, named by RAY_ADDRESS) is joined, not restarted."""
    pytest.importorskip("ray")
    import os
    import subprocess
    import sys
    from pathlib import Path

    import ray

    import lingualift

    src = str(Path(lingualift.__file__).resolve().parents[1])
    head = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import ray, sys; ray.init(num_cpus=1, include_dashboard=False); "
            "print(ray.get_runtime_context().gcs_address, flush=True); sys.stdin.read(); "
            "ray.shutdown()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": src},
    )
    try:
        address = head.stdout.readline().strip()
        assert address, "the head process did not start a cluster"
        monkeypatch.setenv("RAY_ADDRESS", address)
        texts = ["Habari ya asubuhi", "Bonjour à tous", "Guten Morgen"]
        local, _ = embed_texts(texts, "e5-nano", progress=False)
        remote, _ = embed_texts(texts, "e5-nano", backend="ray", batch_size=2, concurrency=1)
        assert ray.get_runtime_context().gcs_address == address
    finally:
        ray.shutdown()
        head.communicate("", timeout=120)  # the head shuts its own cluster down
    np.testing.assert_allclose(remote, local, atol=1e-5)


def test_token_counts_words_and_cjk():
    np.testing.assert_array_equal(count_tokens(["two words", "日本語です", ""]), [2, 5, 1])


def test_uriel_codes_go_through_individual_languages():
    assert (
        uriel_code("sw") == "swh"
        and uriel_code("ar") == "arb"
        and uriel_code("zh") in ("zho", "cmn")
    )
    assert uriel_code("Persian") == "pes" and uriel_code("fr") == "fra"


def test_records_and_vectors_from_two_encoders_do_not_mix(toy_records):
    target, training, _ = toy_records
    sampler = GapSampler(encoder=ToyEncoder(), n_clusters=3, progress=False).fit(target, training)
    other = EmbeddedSet.from_vectors(np.ones((5, 16)), "e5-nano:x", langs=["fr"] * 5)
    with pytest.raises(LingualiftError, match="different encoders"):
        sampler.select(other, 2)


def test_cli_select_writes_outputs_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "sel"
    base = [
        "select",
        "target=corpus:sw:19:12",
        "training=corpus:sw:1:12",
        "pool=corpus:fr,de:all:15",
        "n_clusters=3",
        f"out_dir={out}",
    ]
    bad = tmp_path / "bad"
    assert main([*base[:-1], "budget=31", f"out_dir={bad}"]) == 2
    assert "larger than the pool" in capsys.readouterr().err and not bad.exists()
    assert main([*base, "budget=8", "format=jsonl"]) == 0
    assert "compass: selected 8 of 30" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {
        "selection.jsonl", "report.json", "report.png", "config.yaml", "profile.safetensors",
        "stage.json",
    }  # fmt: skip
    rows = [json.loads(line) for line in (out / "selection.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["lang"] in ("fr", "de") for r in rows)
    assert all("reason" in r["meta"] for r in rows)
    report = json.loads((out / "report.json").read_text())
    assert report["n_clusters"] == 3 and report["encoder"].startswith("e5-nano")
    assert main([*base, "budget=8", "format=jsonl"]) == 0  # the same run: reused
    assert "reused the finished" in capsys.readouterr().out
    assert main([*base, "budget=8"]) == 2  # other settings and no overwrite=true
    assert "made with other settings (format" in capsys.readouterr().err
    assert main([*base, "budget=8", "overwrite=true"]) == 0
    assert (out / "selection.parquet").is_file() and not (out / "selection.jsonl").exists()


def test_select_maps_each_input_and_writes_filterable_columns(tmp_path, capsys):
    import pandas as pd
    import pyarrow.parquet as pq

    from lingualift.data import read_records
    from lingualift.jobs.select import SelectConfig, read_inputs

    target = tmp_path / "usage.jsonl"  # a monolingual file with no language column
    target.write_text(
        "".join(
            json.dumps({"qid": f"q{i}", "question": f"Swali la {i} kuhusu mto"}) + "\n"
            for i in range(8)
        )
    )
    pool = tmp_path / "pool.csv"
    pool.write_text(
        "key,sentence,language\n"
        + "".join(
            f"p{i},{'Une phrase' if i % 2 else 'Ein Satz'} numéro {i},{'fr' if i % 2 else 'de'}\n"
            for i in range(12)
        )
    )
    argv = [
        "select", f"target={target}", f"pool={pool}", "n_clusters=2", "budget=4",
        "target_fields.text=question", "target_fields.id=qid", "target_fields.default_lang=sw",
        "pool_fields.text=sentence", "pool_fields.id=key", "pool_fields.lang=language",
        f"out_dir={tmp_path / 'sel'}",
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    table = pq.read_table(tmp_path / "sel" / "selection.parquet")
    types = {f.name: str(f.type) for f in table.schema}
    assert types["cluster"] == "int64" and types["pool_index"] == "int64"
    assert (
        types["score"] == "double" and types["reason"] == "string" and types["method"] == "string"
    )
    frame = pd.read_parquet(tmp_path / "sel" / "selection.parquet")
    first = int(frame["cluster"].iloc[0])
    assert len(frame[frame.cluster == first]) >= 1 and (frame.score > -1).all()
    assert set(frame["id"]) <= {f"p{i}" for i in range(12)}
    records = read_records(tmp_path / "sel" / "selection.parquet")  # reads back into meta
    assert {"cluster", "score", "reason", "method", "pool_index"} <= set(records[0].meta)
    config = SelectConfig(
        target=str(target), pool=str(pool), target_fields={"text": "question", "default_lang": "sw"},
        pool_fields={"text": "sentence", "lang": "language"},
    )  # fmt: skip
    got_target, _, got_pool = read_inputs(config)
    assert {r.lang for r in got_target} == {"sw"} and {r.lang for r in got_pool} == {"fr", "de"}


def test_the_earlier_flat_field_keys_still_apply_to_every_input():
    from lingualift.jobs.select import SelectConfig

    old = SelectConfig(target="t", pool="p", text_field="body", lang_field="language")
    assert old.target_fields.text == old.pool_fields.text == old.training_fields.text == "body"
    assert old.pool_fields.lang == "language"
    assert old.fields_settings() == {
        "text_field": "body",
        "lang_field": "language",
        "id_field": "id",
    }
    assert (
        "fields" in SelectConfig(target="t", pool="p", pool_fields={"lang": "l"}).fields_settings()
    )
