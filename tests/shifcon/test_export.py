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


def test_export_never_deletes_what_it_did_not_write(tmp_path):
    from lingualift.errors import LingualiftError

    model, _ = tiny_causal_lm("llama", hidden_size=32, num_layers=4)
    shifcon = ShifCon.from_vectors(random_vectors(model), 1, 3)
    folder = tmp_path / "shifcon"
    shifcon.save(folder)
    before = sorted(p.name for p in folder.iterdir())
    for target in (folder, tmp_path):  # the ShifCon folder itself, or a folder holding it
        with pytest.raises(LingualiftError, match="holds the ShifCon folder it reads"):
            export_steered(shifcon, target, model=model, source=folder)
    assert sorted(p.name for p in folder.iterdir()) == before
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    with pytest.raises(LingualiftError, match="did not write"):
        export_steered(shifcon, foreign, model=model)
    assert (foreign / "mine.txt").read_text() == "keep me"
    # An earlier export is replaced without asking; a foreign folder with overwrite=True.
    export_steered(shifcon, folder / "steered", model=model, source=folder)
    export_steered(shifcon, folder / "steered", model=model, source=folder)
    export_steered(shifcon, foreign, model=model, overwrite=True)
    assert (foreign / "steered.json").is_file() and not (foreign / "mine.txt").exists()
