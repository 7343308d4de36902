"""Helpers for ShifCon tests: tiny models and hand-made language vectors."""

from __future__ import annotations

import pytest
import torch

from lingualift.shifcon import LanguageVectors, model_signature


def random_vectors(model, langs=("en", "sw", "fr"), seed=0, scale=1.0, base_model="tiny"):
    """Language vectors of the right shape for ``model`` with random means."""
    sig = model_signature(model)
    gen = torch.Generator().manual_seed(seed)
    means = {
        lang: scale * torch.randn(sig["num_layers"] + 1, sig["hidden_size"], generator=gen)
        for lang in langs
    }
    return LanguageVectors(
        means=means,
        counts={lang: 10 for lang in langs},
        tokens={lang: 100 for lang in langs},
        base_model=base_model,
        **sig,
    )


@pytest.fixture
def toy_batch():
    """Three equal-length rows of byte ids (no padding, so rows are independent)."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 200, (3, 7), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
