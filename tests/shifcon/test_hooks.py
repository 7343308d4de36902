"""Shift hooks on every supported architecture: identities, per-row shifts, generation."""

from __future__ import annotations

import pytest
import torch

from lingualift.errors import LingualiftError
from lingualift.models import decoder_layers
from lingualift.shifcon import ShifCon, shift_hooks
from lingualift.testing import ARCHITECTURES, tiny_causal_lm

from .conftest import random_vectors


@pytest.fixture(scope="module", params=ARCHITECTURES)
def arch_model(request):
    model, _ = tiny_causal_lm(request.param, hidden_size=32, num_layers=4)
    return model


def logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


def test_equal_vectors_leave_the_output_unchanged(arch_model, toy_batch):
    vectors = random_vectors(arch_model)
    vectors.means["sw"] = vectors.means["en"].clone()
    shifcon = ShifCon.from_vectors(vectors, 1, 3)
    base = logits(arch_model, toy_batch)
    with shifcon.apply(arch_model, "sw"):
        shifted = logits(arch_model, toy_batch)
    torch.testing.assert_close(shifted, base)
    # ...while a real difference of vectors does change it (the hooks are live).
    with shifcon.apply(arch_model, "fr"):
        assert not torch.allclose(logits(arch_model, toy_batch), base, atol=1e-4)


def test_toward_then_back_at_the_same_layer_is_the_identity(arch_model, toy_batch):
    shifcon = ShifCon.from_vectors(random_vectors(arch_model, scale=3.0), 1, 3)
    v_en, v_sw = shifcon.vectors.vector("en"), shifcon.vectors.vector("sw")
    a = 2
    toward = v_en[a] - v_sw[a]
    back = v_sw[a] - v_en[a]
    base = logits(arch_model, toy_batch)
    with shift_hooks(arch_model, {a: [toward, back]}):
        same = logits(arch_model, toy_batch)
    torch.testing.assert_close(same, base, atol=1e-5, rtol=1e-5)


def test_mixed_batches_shift_only_the_right_rows(arch_model, toy_batch):
    shifcon = ShifCon.from_vectors(random_vectors(arch_model), 0, 2)
    base = logits(arch_model, toy_batch)
    with shifcon.apply(arch_model, ["sw", "en", "fr"]):
        mixed = logits(arch_model, toy_batch)
    torch.testing.assert_close(mixed[1], base[1])  # the English row is untouched
    for row, lang in ((0, "sw"), (2, "fr")):
        single = {k: v[row : row + 1] for k, v in toy_batch.items()}
        with shifcon.apply(arch_model, lang):
            alone = logits(arch_model, single)[0]
        torch.testing.assert_close(mixed[row], alone, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(mixed[row], base[row], atol=1e-4)


def test_hooks_are_gone_after_the_context(arch_model, toy_batch):
    shifcon = ShifCon.from_vectors(random_vectors(arch_model), 1, 2)
    base = logits(arch_model, toy_batch)
    with shifcon.apply(arch_model, "sw"):
        pass
    assert all(not layer._forward_pre_hooks for layer in decoder_layers(arch_model))
    torch.testing.assert_close(logits(arch_model, toy_batch), base)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_generation_with_kv_cache_shifts_the_new_tokens(arch, toy_batch):
    model, _ = tiny_causal_lm(arch, hidden_size=32, num_layers=4)
    shifcon = ShifCon.from_vectors(random_vectors(model, scale=3.0), 1, 3)
    kwargs = dict(
        max_new_tokens=5,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
        pad_token_id=0,
    )
    with torch.no_grad(), shifcon.apply(model, ["sw", "en", "fr"]):
        cached = model.generate(**toy_batch, use_cache=True, **kwargs)
        full = model.generate(**toy_batch, use_cache=False, **kwargs)
    # Recomputing every step without a cache gives the same scores: new tokens were shifted.
    assert torch.equal(cached.sequences, full.sequences)
    for step_cached, step_full in zip(cached.scores, full.scores, strict=True):
        torch.testing.assert_close(step_cached, step_full, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        plain = model.generate(**toy_batch, use_cache=True, **kwargs)
    torch.testing.assert_close(plain.scores[-1][1], cached.scores[-1][1], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(plain.scores[-1][0], cached.scores[-1][0], atol=1e-3)


def test_beam_search_repeats_the_row_shifts(toy_batch):
    model, _ = tiny_causal_lm("llama", hidden_size=32, num_layers=4)
    shifcon = ShifCon.from_vectors(random_vectors(model), 1, 3)
    with torch.no_grad(), shifcon.apply(model, ["sw", "en", "fr"]):
        out = model.generate(
            **toy_batch, max_new_tokens=3, num_beams=2, do_sample=False, pad_token_id=0
        )
    assert out.shape == (3, 10)


def test_wrong_number_of_languages_fails_clearly(toy_batch):
    model, _ = tiny_causal_lm("llama", hidden_size=32, num_layers=4)
    shifcon = ShifCon.from_vectors(random_vectors(model), 1, 3)
    with (
        pytest.raises(LingualiftError, match="one language for the whole batch or one per row"),
        shifcon.apply(model, ["sw", "fr"]),
    ):
        logits(model, toy_batch)


def test_an_unsupported_architecture_fails_clearly():
    from transformers import T5Config, T5ForConditionalGeneration

    model = T5ForConditionalGeneration(
        T5Config(vocab_size=50, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)
    )
    llama, _ = tiny_causal_lm("llama", hidden_size=32, num_layers=4)
    shifcon = ShifCon.from_vectors(random_vectors(llama), 1, 3)
    with (
        pytest.raises(LingualiftError, match="does not expose its decoder layers"),
        shifcon.apply(model, "sw"),
    ):
        pass
