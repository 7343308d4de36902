"""The lm-eval ``steered`` export reproduces our hooks when lm-eval applies it."""

from __future__ import annotations

import pytest
import torch

from lingualift.shifcon import ShifCon
from lingualift.shifcon.export import export_steered
from lingualift.testing import tiny_causal_lm

from .conftest import random_vectors


@pytest.mark.parametrize("a", [0, 1])
def test_steered_files_match_the_shift_hooks(tmp_path, toy_batch, a):
    from functools import partial

    from lm_eval.models.hf_steered import SteeredModel, steer

    model, _ = tiny_causal_lm("gemma3", hidden_size=32, num_layers=4)
    shifcon = ShifCon.from_vectors(random_vectors(model), a, 3)
    paths = export_steered(shifcon, tmp_path / "steered", model=model)
    assert sorted(p.name for p in paths) == ["fr.pt", "sw.pt"]
    config = torch.load(tmp_path / "steered" / "sw.pt", weights_only=False)
    assert list(config) == (["embed_tokens", "layers.2"] if a == 0 else ["layers.0", "layers.2"])
    assert all(entry["action"] == "add" for entry in config.values())
    # Apply it the way lm-eval's SteeredModel does.
    hooks = {
        name: partial(SteeredModel.add, vector=entry["steering_vector"], head_index=None)
        for name, entry in config.items()
    }
    with torch.no_grad():
        with steer(model, hooks):
            theirs = model(**toy_batch).logits
        with shifcon.apply(model, "sw"):
            ours = model(**toy_batch).logits
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
