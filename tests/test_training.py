"""The shared training loop on a tiny fully fine-tuned model (every parameter trainable)."""

from __future__ import annotations

import pytest
import torch

from lingualift.errors import LingualiftError
from lingualift.testing import tiny_causal_lm
from lingualift.training import StepRecord, TrainingArgs, TrainingLoop

TINY = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, initializer_range=0.2)

pytestmark = pytest.mark.usefixtures("one_thread")


def make_loop(
    tmp_path, fingerprint: str = "a", keep_checkpoints: int = 1, save_every: int = 0, **args
) -> TrainingLoop:
    model, _ = tiny_causal_lm("llama", **TINY)
    model.train()
    loop = TrainingLoop(
        model,
        TrainingArgs(
            **{
                "lr": 1e-2,
                "schedule": "linear",
                "warmup_steps": 1,
                "keep_checkpoints": keep_checkpoints,
                "save_every": save_every,
                **args,
            }
        ),
        run_dir=tmp_path,
        fingerprint=lambda: fingerprint,
        settings="test settings",
    )
    loop.build_schedule(4)
    return loop


def lm_loss(loop: TrainingLoop):
    def loss_fn(batch, backward):
        loss = loop.model(**batch).loss
        backward(loss)
        return {"loss": loss}

    return loss_fn


def batch(rows: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    ids = torch.randint(3, 200, (rows, 10), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


def test_a_step_lowers_the_loss_and_backward_must_run_once(tmp_path):
    loop = make_loop(tmp_path, schedule="constant", warmup_steps=0)
    loop.build_schedule(10)
    fixed = batch(4, torch.Generator().manual_seed(0))
    losses = [loop.train_step([fixed], lm_loss(loop))["loss"] for _ in range(4)]
    assert losses[-1] < 0.9 * losses[0]
    with pytest.raises(RuntimeError, match="called backward 0 times"):
        loop.train_step([fixed], lambda b, backward: {"loss": loop.model(**b).loss})


def test_accumulated_micro_batches_equal_one_bigger_batch(tmp_path):
    big = batch(4, torch.Generator().manual_seed(1))
    halves = [{k: v[:2] for k, v in big.items()}, {k: v[2:] for k, v in big.items()}]
    one, two = make_loop(tmp_path / "one"), make_loop(tmp_path / "two")
    loss_one = one.train_step([big], lm_loss(one))["loss"]
    loss_two = two.train_step(halves, lm_loss(two))["loss"]
    assert loss_two == pytest.approx(loss_one, rel=1e-5)
    # AdamW's first moment after one step is 0.1 * gradient: the gradients agree.
    for p_one, p_two in zip(one.params, two.params, strict=True):
        torch.testing.assert_close(
            two.optimizer.state[p_two]["exp_avg"],
            one.optimizer.state[p_one]["exp_avg"],
            rtol=1e-4,
            atol=1e-7,
        )


def fit(loop: TrainingLoop, state: dict, crash_at: int | None = None):
    def step(index: int) -> StepRecord:
        if index == crash_at:
            raise KeyboardInterrupt
        # Batches from the global RNG: a resume must restore it to see the same data.
        out = loop.train_step([batch(2)], lm_loss(loop))
        return StepRecord({"loss": out["loss"]}, {"tokens": 20})

    loop.fit(4, step, state, desc="test", show_progress=False)


def fresh_state() -> dict:
    return {"history": [], "seconds": 0.0, "tokens": 0}


def test_resume_gives_the_weights_of_an_uninterrupted_run_and_refuses_other_settings(tmp_path):
    torch.manual_seed(7)
    straight = make_loop(tmp_path / "straight")
    straight_state = fresh_state()
    fit(straight, straight_state)

    torch.manual_seed(7)
    crashed = make_loop(tmp_path / "run", keep_checkpoints=2, save_every=1)
    with pytest.raises(KeyboardInterrupt):
        fit(crashed, fresh_state(), crash_at=3)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["step-000002", "step-000003"]  # the oldest one pruned

    torch.manual_seed(123)  # the checkpoint's RNG state must win over this
    resumed = make_loop(tmp_path / "run")
    state = resumed.resume()
    assert resumed.step == 3 and [h["step"] for h in state["history"]] == [1, 2, 3]
    fit(resumed, state)
    assert state["tokens"] == straight_state["tokens"] == 80
    assert [h["loss"] for h in state["history"]] == [h["loss"] for h in straight_state["history"]]
    for p_resumed, p_straight in zip(resumed.params, straight.params, strict=True):
        torch.testing.assert_close(p_resumed, p_straight, rtol=0, atol=0)

    other = make_loop(tmp_path / "run", fingerprint="b")
    with pytest.raises(LingualiftError, match="was made with other test settings"):
        other.resume()
    assert make_loop(tmp_path / "nothing").resume() is None


class _Exploit:
    """Unpickling this runs a shell command: what a crafted checkpoint could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_is_refused_without_running_its_code(tmp_path):
    from safetensors.torch import save_file

    loop = make_loop(tmp_path)
    folder = tmp_path / "checkpoints" / "step-000001"
    folder.mkdir(parents=True)
    save_file({"x": torch.zeros(1)}, str(folder / "weights.safetensors"))
    marker = tmp_path / "pwned"
    torch.save({"step": 1, "payload": _Exploit(marker)}, folder / "trainer_state.pt")
    with pytest.raises(LingualiftError, match="not a lingualift checkpoint"):
        loop.resume()
    assert not marker.exists()
    # A plain-data state without a fingerprint is refused by name, not with a KeyError.
    torch.save({"step": 1, "optimizer": {}, "rng": {}, "state": {}}, folder / "trainer_state.pt")
    with pytest.raises(LingualiftError, match="other test settings"):
        loop.resume()


def test_a_loss_term_joins_every_step_and_is_reported(tmp_path):
    loop = make_loop(tmp_path, schedule="constant", warmup_steps=0)
    fixed = batch(2, torch.Generator().manual_seed(3))
    start = {name: p.detach().clone() for name, p in loop.model.named_parameters()}

    def pull_to_start(model):
        return 10.0 * sum(((p - start[n]) ** 2).sum() for n, p in model.named_parameters())

    loop.add_loss_term("penalty", pull_to_start)
    first = loop.train_step([fixed], lm_loss(loop))
    second = loop.train_step([fixed, fixed], lm_loss(loop))
    assert first["penalty"] == 0.0 and second["penalty"] > 0.0
    with pytest.raises(LingualiftError, match="taken"):
        loop.add_loss_term("loss", pull_to_start)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"save_every": -1}, "save_every must not be negative"),
        ({"log_every": 0}, "log_every must be at least 1"),
        ({"keep_checkpoints": 0}, "keep_checkpoints must be at least 1"),
        ({"warmup_steps": -2}, "warmup_steps must not be negative"),
        ({"warmup_steps": 2.5}, "whole number of steps or a fraction"),
        ({"lr": 0}, "lr must be positive"),
        ({"max_steps": 0, "epochs": 0}, "max_steps to a positive number"),
    ],
)
def test_training_args_refuse_values_that_make_no_sense(bad, message):
    with pytest.raises(LingualiftError, match=message):
        TrainingArgs(**bad)


def test_warmup_is_steps_or_a_fraction():
    assert TrainingArgs(warmup_steps=5).warmup(100) == 5
    assert TrainingArgs(warmup_steps=0.1).warmup(100) == 10
    assert TrainingArgs(max_steps=0, epochs=2, grad_accum=2).total_steps(10) == 10


def test_fsdp_gets_pefts_lora_aware_wrap_policy():
    """Under FSDP the LoRA leaves are their own FSDP units (PEFT's FSDP guide); a config that
    keeps the original parameters is refused in one sentence."""
    from types import SimpleNamespace

    from peft import get_peft_model

    from lingualift.training import LoraSettings, lora_aware_wrap_policy

    model = get_peft_model(tiny_causal_lm("llama")[0], LoraSettings(r=2).peft_config())
    plugin = SimpleNamespace(use_orig_params=False, auto_wrap_policy="TRANSFORMER_BASED_WRAP")
    lora_aware_wrap_policy(SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin)), model)
    policy = plugin.auto_wrap_policy
    lora_a = model.base_model.model.model.layers[0].self_attn.q_proj.lora_A["default"]
    frozen = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer
    layer = model.base_model.model.model.layers[0]
    assert policy(module=lora_a, recurse=False, nonwrapped_numel=0)  # a trainable leaf: a unit
    assert not policy(module=frozen, recurse=False, nonwrapped_numel=0)  # frozen: with its layer
    assert policy(module=layer, recurse=False, nonwrapped_numel=0)  # each decoder layer: a unit
    plugin.use_orig_params = True
    with pytest.raises(LingualiftError, match="fsdp_use_orig_params: false"):
        lora_aware_wrap_policy(SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin)), model)
