"""The contrastive loss: a hand-computed value, and gradients that reach the LoRA weights."""

from __future__ import annotations

import math

import pytest
import torch

from lingualift.shifcon import ShifCon
from lingualift.shifcon.loss import contrastive_loss, info_nce
from lingualift.shifcon.trainer import Pair, shifcon_losses
from lingualift.testing import tiny_causal_lm

from .conftest import random_vectors


def test_info_nce_matches_a_hand_computed_value():
    z_en = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # normalised: e1, e2
    z_l = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # normalised: e1, (e1 + e2)/sqrt 2
    tau = 0.5
    c = 1 / math.sqrt(2)
    # logits = [[1, c], [0, c]] / tau
    l11, l12, l21, l22 = 1 / tau, c / tau, 0.0, c / tau
    rows = -math.log(math.exp(l11) / (math.exp(l11) + math.exp(l12))) - math.log(
        math.exp(l22) / (math.exp(l21) + math.exp(l22))
    )
    cols = -math.log(math.exp(l11) / (math.exp(l11) + math.exp(l21))) - math.log(
        math.exp(l22) / (math.exp(l12) + math.exp(l22))
    )
    expected = 0.5 * (rows / 2 + cols / 2)
    assert float(info_nce(z_en, z_l, tau)) == pytest.approx(expected, rel=1e-6)
    # Averaged over layers: one perfect layer (loss ~ 0 at a tiny tau) and this one.
    perfect = torch.eye(2)
    both = contrastive_loss([z_en, perfect], [z_l, perfect * 5], tau)
    assert float(both) == pytest.approx(
        0.5 * expected + 0.5 * float(info_nce(perfect, perfect, tau))
    )


def _lora_model():
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny_causal_lm("llama", hidden_size=32, num_layers=4)
    shifcon = ShifCon.from_vectors(random_vectors(model), 1, 3)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    # lora_B starts at zero, which blocks the gradient of lora_A; give B a value.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    return model, tokenizer, shifcon


def test_gradients_reach_the_lora_weights_of_layers_before_b():
    model, tokenizer, shifcon = _lora_model()
    pairs = [Pair("sw", f"habari {i} za leo", f"news {i} of today") for i in range(4)]
    losses = shifcon_losses(model, tokenizer, shifcon, pairs, alpha=0.0, beta=1.0, tau=0.1)
    losses["loss"].backward()
    grads = {n: p.grad for n, p in model.named_parameters() if "lora_" in n}
    assert float(losses["con"]) > 0

    def layer_norm(i):
        return sum(
            float(g.abs().sum()) for n, g in grads.items() if g is not None and f"layers.{i}." in n
        )

    # States at indices a+1..b are outputs of layers 1..2: layers 0-2 get gradient, layer 3 none.
    assert all(layer_norm(i) > 0 for i in range(3))
    assert layer_norm(3) == 0


def test_mixed_batch_path_gives_the_same_losses_as_two_passes():
    model, tokenizer = tiny_causal_lm("gemma3", hidden_size=32, num_layers=4)
    shifcon = ShifCon.from_vectors(random_vectors(model), 1, 3)
    pairs = [Pair("sw", f"habari {i} za leo{'!' * i}", f"news {i}") for i in range(3)]
    with torch.no_grad():
        two = shifcon_losses(model, tokenizer, shifcon, pairs)
        one = shifcon_losses(model, tokenizer, shifcon, pairs, mixed_batch=True)
    for key in ("gen", "con", "loss"):
        assert float(one[key]) == pytest.approx(float(two[key]), rel=1e-4, abs=1e-5)


def test_fixed_anchors_take_the_english_side_out_of_the_gradient_on_both_paths():
    model, tokenizer, shifcon = _lora_model()
    pairs = [Pair("sw", f"habari {i} za leo{'!' * i}", f"news {i} of today") for i in range(3)]

    def grads(**kwargs):
        model.zero_grad()
        shifcon_losses(model, tokenizer, shifcon, pairs, alpha=0.0, beta=1.0, tau=0.1, **kwargs)[
            "loss"
        ].backward()
        return torch.cat([p.grad.flatten() for n, p in model.named_parameters() if "lora_" in n])

    fixed, fixed_mixed = grads(train_anchors=False), grads(train_anchors=False, mixed_batch=True)
    trained = grads()
    # The same gradient whichever path runs; without the English side's share it differs.
    assert torch.allclose(fixed, fixed_mixed, rtol=1e-3, atol=1e-6)
    assert not torch.allclose(fixed, trained, rtol=1e-3, atol=1e-6)
    assert float(fixed.abs().sum()) > 0
