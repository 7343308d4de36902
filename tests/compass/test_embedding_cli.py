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
