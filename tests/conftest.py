"""Shared fixtures: an isolated cache home, tiny random models, small data files."""

from __future__ import annotations

import pytest

from lingualift.testing import save_tiny_causal_lm, tiny_causal_lm


@pytest.fixture(autouse=True)
def isolated_home(request, tmp_path_factory, monkeypatch):
    """Each unit test gets its own LINGUALIFT_HOME (and Hugging Face cache for what lingualift
    registers there); integration tests use the real caches."""
    if request.node.get_closest_marker("integration") is None:
        home = tmp_path_factory.mktemp("home")
        monkeypatch.setenv("LINGUALIFT_HOME", str(home))
        monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf-hub"))


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and the machine's cores are shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=["gemma3", "llama", "qwen2"])
def tiny_lm(request):
    """(model, tokenizer) of a tiny random model, once per main architecture."""
    return tiny_causal_lm(request.param)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny Llama-shaped model saved to disk, loadable as a local model path."""
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture
def text_file(tmp_path):
    """Twelve Swahili text rows as JSONL (a tiny training set)."""
    import json

    rows = [
        {"id": f"r{i}", "text": f"habari ya asubuhi rafiki yangu {i % 3}", "lang": "sw"}
        for i in range(12)
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path
