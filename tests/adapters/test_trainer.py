"""LoraTrainer, the component: data, steps, held-out loss, a parent version, loss terms."""

import pytest
import torch

from lingualift.adapters import AdapterStore, LoraTrainer
from lingualift.adapters.data import Example
from lingualift.errors import LingualiftError
from lingualift.testing import tiny_causal_lm
from lingualift.training import LoraSettings, TrainingArgs

from .conftest import TINY

ARGS = dict(batch_size=4, lr=1e-2, schedule="constant")


def examples(n=12):
    return [
        Example(id=f"r{i}", kind="text", text=f"habari ya asubuhi rafiki {i % 3}") for i in range(n)
    ]


def trainer(tmp_path, init_adapter=None, **args):
    model, tokenizer = tiny_causal_lm("llama", **TINY)
    return LoraTrainer(
        model,
        tokenizer,
        TrainingArgs(**{**ARGS, **args}),
        LoraSettings(r=4, alpha=8, dropout=0.0),
        run_dir=tmp_path,
        init_adapter=init_adapter,
    )


def test_loss_goes_down_and_the_held_out_loss_follows(tmp_path):
    run = trainer(tmp_path, max_steps=40)
    run.load_data(examples(12), examples(3))
    trained = run.fit(progress=False)
    m = trained.metrics
    assert m["train_loss_last"] < 0.7 * m["train_loss_first"]
    assert m["eval_loss"] < m["eval_loss_before"] and m["steps"] == 40
    assert m["epochs"] == pytest.approx(40 * 4 / 12, rel=1e-3)
    assert trained.base_model["model_type"] == "llama"
    assert trained.plot(tmp_path / "loss.png", "t").stat().st_size > 1000


def test_a_parent_version_is_where_the_next_one_starts(tmp_path):
    from peft import get_peft_model_state_dict

    first = trainer(tmp_path / "a", max_steps=3)
    first.load_data(examples())
    store = AdapterStore(tmp_path / "store")
    version = store.save("sw", first.fit(progress=False).model)
    second = trainer(tmp_path / "b", init_adapter=version.path, max_steps=1)
    from safetensors.torch import load_file

    saved = load_file(str(version.path / "adapter_model.safetensors"))
    start = get_peft_model_state_dict(second.model)
    assert saved.keys() == start.keys() and all(torch.equal(saved[k], start[k]) for k in saved)


def test_a_loss_term_is_reported_and_pulls_the_weights(tmp_path):
    def run(strength):
        t = trainer(tmp_path / str(strength), max_steps=5)
        start = {n: p.detach().clone() for n, p in t.model.named_parameters() if p.requires_grad}
        t.loop.add_loss_term(
            "anchor",
            lambda model: (
                strength
                * sum(
                    ((p - start[n]) ** 2).sum() for n, p in model.named_parameters() if n in start
                )
            ),
        )
        t.load_data(examples())
        trained = t.fit(progress=False)
        moved = sum(
            float(((p.detach() - start[n]) ** 2).sum())
            for n, p in trained.model.named_parameters()
            if n in start
        )
        return trained, moved

    _, moved_free = run(0.0)
    held, moved_held = run(100.0)
    assert "anchor" in held.metrics["history"][-1]
    assert moved_held < 0.5 * moved_free


def test_nothing_to_learn_is_one_clear_sentence(tmp_path):
    run = trainer(tmp_path, max_steps=1, max_length=1)
    with pytest.raises(LingualiftError, match="No training example has a token"):
        run.load_data(examples(2))
