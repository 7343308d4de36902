"""Fixtures for adapter tests: tiny models, small data files, a store with two adapters."""

from __future__ import annotations

import pytest

from lingualift.testing import tiny_causal_lm

# initializer_range 0.2: with the default 0.02 the tied output head of a hidden-32 model is too
# small for any adapter to move the loss far from uniform.
TINY = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, initializer_range=0.2)


@pytest.fixture(autouse=True)
def adapters_on_one_thread(one_thread):
    """Every adapter test runs on one thread (see the shared ``one_thread``)."""


@pytest.fixture
def tiny():
    """(model, tokenizer): a 2-layer Llama with hidden size 32 and the byte tokenizer."""
    return tiny_causal_lm("llama", **TINY)


def random_adapter(model, seed: int, r: int = 4):
    """A PEFT LoRA model whose adapter is random (non-zero), so it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", init_lora_weights=False)
    return get_peft_model(model, config)


def add_version(store, lang: str, seed: int, promote: bool = True, **shape):
    """Store a random (non-zero) adapter for ``lang`` with a card naming its base model
    (the tiny Llama of :data:`TINY`, or another ``shape`` of it)."""
    from lingualift.adapters import base_model_signature

    model, _ = tiny_causal_lm("llama", **{**TINY, **shape})
    peft_model = random_adapter(model, seed)
    card = {"base_model": base_model_signature(peft_model)}
    return store.save(lang, peft_model, card=card, promote=promote)


def make_store(root):
    """A store holding sw/v1 and fr/v1, random adapters on the tiny model."""
    from lingualift.adapters import AdapterStore

    store = AdapterStore(root)
    add_version(store, "sw", 1)
    add_version(store, "fr", 2)
    return store
