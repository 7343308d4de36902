"""Cards pin the weights an adapter was trained on: a folder by the content hash of its weights,
a hub id by its cached commit, the embedded model by its portable revision (test_portable.py)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from lingualift.portable import base_identity, weights_digest
from lingualift.testing import save_tiny_causal_lm


def _train(tmp_path, model: str, text_file, name: str = "run"):
    from lingualift.jobs.train import TrainConfig, run_train
    from lingualift.training import LoraSettings, TrainingArgs

    result = run_train(
        TrainConfig(
            lang="sw",
            model=model,
            data=str(text_file),
            train=TrainingArgs(max_steps=1, batch_size=4, max_length=16),
            lora=LoraSettings(r=2, dropout=0.0),
            eval_fraction=0.0,
            out_dir=str(tmp_path / name),
            store=str(tmp_path / f"store-{name}"),
        )
    )
    folder = result.adapter.path
    card = json.loads((folder / "card.json").read_text())
    config = json.loads((folder / "adapter_config.json").read_text())
    return card, config, folder


def test_a_local_folder_is_pinned_by_the_hash_of_its_weights(tmp_path, text_file, one_thread):
    base = save_tiny_causal_lm(tmp_path / "base", "llama")
    card, config, folder = _train(tmp_path, str(base), text_file)
    digest = weights_digest(base)
    assert digest is not None and list(digest["files"]) == ["model.safetensors"]
    revision = f"sha256:{digest['sha256']}"
    assert card["base_model"]["revision"] == revision == config["revision"]
    assert card["base_model"]["weights"] == digest
    assert config["base_model_name_or_path"] == str(base)
    assert digest["sha256"] in (folder / "README.md").read_text()

    # The same bytes hash the same (from the cache); other weights hash differently.
    assert base_identity(str(base)).revision == revision
    copy = shutil.copytree(base, tmp_path / "copy")
    assert base_identity(str(copy)).revision == revision
    tensors = load_file(copy / "model.safetensors")
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, copy / "model.safetensors", metadata={"format": "pt"})
    changed = base_identity(str(copy)).revision
    assert changed.startswith("sha256:") and changed != revision
    assert base_identity(str(base)).revision == revision


def test_the_folder_hash_is_what_sha256sum_gives(tmp_path):
    import hashlib

    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"one")
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"two")
    (tmp_path / "pytorch_model.bin").write_bytes(b"ignored: safetensors are there")
    listing = "".join(
        f"{hashlib.sha256(data).hexdigest()}  model-0000{i}-of-00002.safetensors\n"
        for i, data in ((1, b"one"), (2, b"two"))
    )
    digest = weights_digest(tmp_path)
    assert digest["sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    assert len(digest["files"]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert weights_digest(empty) is None and base_identity(str(empty)).revision is None


def test_a_hub_id_is_pinned_by_its_cached_commit(tmp_path, text_file, one_thread, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    cache = tmp_path / "hf"
    repo = cache / "models--acme--tiny-llama"
    save_tiny_causal_lm(repo / "snapshots" / commit, "llama")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub read both when it was imported; transformers looks them up there.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert base_identity("acme/tiny-llama").revision == commit
    assert base_identity("acme/not-cached").revision is None
    card, config, _ = _train(tmp_path, "acme/tiny-llama", text_file)
    assert card["base_model"]["revision"] == commit == config["revision"]
    assert config["base_model_name_or_path"] == "acme/tiny-llama"

    # PEFT passes that revision to the base's from_pretrained: once main has moved on to
    # other weights, the adapter still loads on the snapshot it was trained on.
    from peft import AutoPeftModelForCausalLM, PeftConfig

    newer = "fedcba9876543210fedcba9876543210fedcba98"
    save_tiny_causal_lm(repo / "snapshots" / newer, "llama", seed=1)
    (repo / "refs" / "main").write_text(newer)
    assert base_identity("acme/tiny-llama").revision == newer
    folder = next((tmp_path / "store-run" / "sw").glob("v*"))
    assert PeftConfig.from_pretrained(str(folder)).revision == commit
    loaded = AutoPeftModelForCausalLM.from_pretrained(str(folder)).get_base_model()
    trained_on = load_file(repo / "snapshots" / commit / "model.safetensors")
    name = "model.embed_tokens.weight"
    assert torch.equal(loaded.state_dict()[name], trained_on[name])
    assert not torch.equal(
        trained_on[name], load_file(repo / "snapshots" / newer / "model.safetensors")[name]
    )


@pytest.mark.parametrize("spec", ["/no/such/folder", "not a repo id!"])
def test_names_that_are_not_cached_hub_ids_have_no_revision(spec):
    assert base_identity(spec).revision is None and base_identity(spec).kind == "hub"
