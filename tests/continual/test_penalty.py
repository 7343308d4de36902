"""L2-SP and EWC keep an update's weights nearer the previous version than no penalty does."""

from __future__ import annotations

import pytest

from lingualift.adapters.data import Example, tokenize_examples
from lingualift.adapters.trainer import LoraTrainer
from lingualift.continual.penalty import WeightPenalty, add_penalty, fisher_diagonal
from lingualift.testing import tiny_causal_lm
from lingualift.training import TrainingArgs
from tests.adapters.conftest import TINY, random_adapter


@pytest.fixture
def previous(tmp_path, one_thread):
    """A saved non-zero LoRA adapter: the 'current version' an update starts from."""
    model, _ = tiny_causal_lm("llama", **TINY)
    folder = tmp_path / "v1"
    random_adapter(model, seed=3).save_pretrained(str(folder))
    return folder


def examples(prefix, n=12):
    return [Example(id=f"{prefix}{i}", kind="text", text=f"{prefix} maneno mapya {i} " * 3)
            for i in range(n)]  # fmt: skip


def moved(previous, tmp_path, kind, lam=50.0):
    model, tokenizer = tiny_causal_lm("llama", **TINY)
    args = TrainingArgs(lr=5e-2, max_steps=6, batch_size=4, max_length=48, warmup_steps=0)
    trainer = LoraTrainer(
        model, tokenizer, args, run_dir=tmp_path / f"run-{kind}", init_adapter=previous
    )
    trainer.load_data(examples("habari"))
    replay = tokenize_examples(examples("zamani", 6), tokenizer, 48)
    probe = WeightPenalty(trainer.model, 1.0)  # measures the distance to the start
    _penalty, info = add_penalty(trainer, kind, lam, replay)
    trainer.fit(progress=False)
    return probe.distance(), info, trainer


def test_l2sp_and_ewc_stay_nearer_than_no_penalty(previous, tmp_path):
    free, info, _ = moved(previous, tmp_path, "none")
    l2sp, l2_info, trainer = moved(previous, tmp_path, "l2sp")
    ewc, ewc_info, _ = moved(previous, tmp_path, "ewc")
    assert info == {"kind": "none"} and free > 0
    assert l2sp < 0.5 * free, (l2sp, free)
    # EWC lets low-Fisher weights move freely, so its plain distance shrinks less than L2-SP's.
    assert ewc < 0.8 * free, (ewc, free)
    assert l2_info == {"kind": "l2sp", "lambda": 50.0}
    assert ewc_info["kind"] == "ewc" and ewc_info["fisher_examples"] == 6
    assert "l2sp" in trainer.loop.loss_terms


def test_fisher_is_mean_normalised_and_flat_fisher_is_l2sp(previous, one_thread):
    import torch
    from peft import PeftModel

    model, tokenizer = tiny_causal_lm("llama", **TINY)
    peft_model = PeftModel.from_pretrained(model, str(previous), is_trainable=True)
    rows = tokenize_examples(examples("zamani", 4), tokenizer, 32)
    fisher = fisher_diagonal(peft_model, rows, tokenizer.pad_token_id)
    assert torch.stack([f.mean() for f in fisher.values()]).mean() == pytest.approx(1.0)
    assert all(f.min() >= 0 for f in fisher.values())
    flat = {name: torch.ones_like(f) for name, f in fisher.items()}
    l2, weighted = WeightPenalty(peft_model, 2.0), WeightPenalty(peft_model, 2.0, flat)
    with torch.no_grad():
        for param, _, _ in l2.terms:
            param.add_(0.1)
    with torch.no_grad():
        assert float(l2()) == pytest.approx(float(weighted())) and float(l2()) > 0
