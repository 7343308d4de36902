"""Stacked LoRA: one gathered matmul per layer gives what PEFT's per-adapter loop gives."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model

from lingualift.adapters.multilora import BASE, StackedLora
from lingualift.testing import tiny_causal_lm

from .conftest import TINY


def peft_model_with(ranks: dict[str, int], **extra):
    """A tiny Llama carrying one random (non-zero) LoRA adapter per name, of the given rank."""
    model, _ = tiny_causal_lm("llama", **TINY)
    peft_model = None
    for seed, (name, r) in enumerate(ranks.items()):
        torch.manual_seed(seed)
        config = LoraConfig(
            r=r, lora_alpha=3 * r, target_modules="all-linear", init_lora_weights=False, **extra
        )
        if peft_model is None:
            peft_model = get_peft_model(model, config, adapter_name=name)
        else:
            peft_model.add_adapter(name, config)
    return peft_model.eval()


def logits(model, ids, **kwargs):
    with torch.inference_mode():
        return model(input_ids=ids, **kwargs).logits


def test_stacked_rows_equal_peft_mixed_batches_with_base_rows_and_different_ranks():
    model = peft_model_with({"sw": 4, "fr": 8, "yo": 2})
    ids = torch.randint(0, 100, (5, 7), generator=torch.Generator().manual_seed(0))
    names = ["sw", BASE, "fr", "yo", "sw"]
    expected = logits(model, ids, adapter_names=names)
    stacked = StackedLora(model)
    assert stacked.ready()
    with stacked.apply(names):
        got = logits(model, ids)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # The hooks are gone afterwards and the adapters differ, so the comparison could fail.
    with model.disable_adapter():
        base = logits(model, ids)
    torch.testing.assert_close(logits(model, ids, adapter_names=[BASE] * 5), base)
    assert not torch.allclose(expected[0], expected[2])
    assert not torch.allclose(expected[0], base[0])


def test_a_loaded_or_deleted_adapter_rebuilds_the_stacks():
    model = peft_model_with({"sw": 4, "fr": 4})
    stacked = StackedLora(model)
    ids = torch.randint(0, 100, (2, 5), generator=torch.Generator().manual_seed(1))
    assert stacked.ready()
    torch.manual_seed(9)
    model.add_adapter(
        "sw@v2", LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    )
    model.delete_adapter("fr")
    names = ["sw@v2", "sw"]
    with stacked.apply(names):
        got = logits(model, ids)
    torch.testing.assert_close(got, logits(model, ids, adapter_names=names), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="not loaded"), stacked.apply(["fr", "sw"]):
        pass


def test_adapter_kinds_that_cannot_be_stacked_keep_pefts_path():
    model = peft_model_with({"sw": 4, "fr": 4}, use_dora=True)
    assert not StackedLora(model).ready()
