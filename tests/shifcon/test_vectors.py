"""Language vectors: the index convention, persistence, and refusal of bad input."""

from __future__ import annotations

import json

import pytest
import torch

from lingualift.errors import LingualiftError
from lingualift.shifcon import LanguageVectors, ShifCon, compute_language_vectors
from lingualift.testing import tiny_causal_lm

from .conftest import random_vectors

TEXTS = {
    "en": [f"the cat {i} sat on the mat" + "!" * (i % 3) for i in range(12)],
    "sw": [f"paka {i} alikaa kwenye mkeka" for i in range(12)],
}


@pytest.fixture(scope="module")
def tiny():
    return tiny_causal_lm("qwen2", hidden_size=32, num_layers=3)


def test_vectors_are_means_of_token_means_at_the_documented_indices(tiny):
    model, tokenizer = tiny
    vectors = compute_language_vectors(
        model, tokenizer, TEXTS, base_model="tiny", batch_size=5, subspace_rank=4, progress=False
    )
    assert vectors.languages == ["en", "sw"] and vectors.counts == {"en": 12, "sw": 12}
    # Reference: one sentence at a time (no padding), from the model's own hidden states
    # (index i = input of decoder layer i); the last index is the pre-norm output of the stack.
    sums = torch.zeros(3, 32)
    for text in TEXTS["sw"]:
        batch = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            hs = model(**batch, output_hidden_states=True).hidden_states
        sums += torch.stack([h[0].mean(dim=0) for h in hs[:3]])
    torch.testing.assert_close(vectors.means["sw"][:3], sums / 12, atol=1e-5, rtol=1e-4)
    assert vectors.bases["sw"].shape == (4, 4, 32)
    gram = vectors.bases["sw"][2] @ vectors.bases["sw"][2].T
    torch.testing.assert_close(gram, torch.eye(4), atol=1e-4, rtol=0)


def test_save_and_load_round_trip_with_metadata(tmp_path, tiny):
    model, _ = tiny
    vectors = random_vectors(model, base_model="embedded:tiny")
    path = vectors.save(tmp_path / "v")
    loaded = LanguageVectors.load(tmp_path / "v")
    assert path.name == "vectors.safetensors"
    assert loaded.base_model == "embedded:tiny" and loaded.num_layers == 3
    assert loaded.counts == vectors.counts
    torch.testing.assert_close(loaded.means["fr"], vectors.means["fr"])
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["hidden_size"] == "32" and json.loads(meta["counts"])["sw"] == 10


def test_shifcon_folder_round_trip(tmp_path, tiny):
    model, _ = tiny
    shifcon = ShifCon.from_vectors(random_vectors(model), 0, 2)
    shifcon.save(tmp_path / "sc")
    (tmp_path / "sc" / "note.txt").write_text("kept")
    shifcon.save(tmp_path / "sc")  # overwrite keeps other files
    loaded = ShifCon.load(tmp_path / "sc")
    assert (loaded.a, loaded.b, loaded.dominant) == (0, 2, "en")
    assert (tmp_path / "sc" / "note.txt").read_text() == "kept"
    config = json.loads((tmp_path / "sc" / "shifcon.json").read_text())
    assert config["base_model"] == "tiny" and config["languages"] == ["en", "fr", "sw"]


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [(2, 2, "needs a < b"), (2, 1, "needs a < b"), (-1, 2, "out of range"), (1, 3, "out of range")],
)
def test_bad_layer_areas_fail_with_one_sentence(tiny, a, b, message):
    model, _ = tiny
    with pytest.raises(LingualiftError, match=message):
        ShifCon.from_vectors(random_vectors(model), a, b)


def test_vectors_of_another_model_are_refused(tiny):
    model, _ = tiny
    other, _ = tiny_causal_lm("qwen2", hidden_size=32, num_layers=4)
    shifcon = ShifCon.from_vectors(random_vectors(other, base_model="other-model"), 1, 2)
    with (
        pytest.raises(LingualiftError, match=r"computed on other-model \(num_layers=4\)"),
        shifcon.apply(model, "sw"),
    ):
        pass
    llama, _ = tiny_causal_lm("llama", hidden_size=32, num_layers=3)
    with (
        pytest.raises(LingualiftError, match="model_type"),
        ShifCon.from_vectors(random_vectors(llama), 1, 2).apply(model, "sw"),
    ):
        pass


def test_a_language_without_a_vector_fails_clearly(tiny):
    model, _ = tiny
    shifcon = ShifCon.from_vectors(random_vectors(model), 1, 2)
    with (
        pytest.raises(LingualiftError, match="No language vector for 'hi'"),
        shifcon.apply(model, ["sw", "hi"]),
    ):
        pass
    with (
        pytest.raises(LingualiftError, match="Unknown language"),
        shifcon.apply(model, "not a language 123"),
    ):
        pass


def test_missing_or_foreign_files_fail_clearly(tmp_path):
    with pytest.raises(LingualiftError, match="holds no shifcon.json"):
        ShifCon.load(tmp_path)
    (tmp_path / "vectors.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(LingualiftError, match="not a safetensors file"):
        LanguageVectors.load(tmp_path)
