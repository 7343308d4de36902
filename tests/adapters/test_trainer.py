import json
import os
import subprocess
import sys

import pytest
import torch

from lingualift.adapters import AdapterStore, LoraSettings, LoraTrainer, TrainConfig, train
from lingualift.errors import LingualiftError
from lingualift.testing import save_tiny_causal_lm, tiny_causal_lm

from .conftest import TINY, write_jsonl


def config(tmp_path, data, **kw):
    base = dict(
        lang="sw",
        model="tiny",
        data=str(data),
        batch_size=4,
        lr=1e-2,
        schedule="constant",
        lora=LoraSettings(r=4, alpha=8, dropout=0.0),
        eval_fraction=0.0,
        output_dir=str(tmp_path / "run"),
        store=str(tmp_path / "store"),
    )
    base.update(kw)
    return TrainConfig(**base)


def test_loss_goes_down_on_a_tiny_overfit_set(tmp_path, tiny, text_file):
    result = train(config(tmp_path, text_file, max_steps=40, eval_fraction=0.25), *tiny)
    m = result.metrics
    assert m["train_loss_last"] < 0.7 * m["train_loss_first"]
    assert m["eval_loss"] < m["eval_loss_before"]
    assert (result.run_dir / "loss.png").stat().st_size > 1000
    # Stored as a plain PEFT folder with a complete card, and it is the current version.
    version = result.adapter
    assert version.current and AdapterStore(tmp_path / "store").path("sw") == version.path
    card = json.loads((version.path / "card.json").read_text())
    assert card["base_model"]["hidden_size"] == 32 and card["base_model"]["model_type"] == "llama"
    assert card["data"][0]["rows"] == 12 and len(card["data"][0]["fingerprint"]) == 64
    assert card["config"]["lora"]["r"] == 4 and card["metrics"]["steps"] == 40
    from peft import PeftModel

    model, _ = tiny_causal_lm("llama", **TINY)
    PeftModel.from_pretrained(model, str(version.path))  # loads unchanged


def test_resume_continues_from_the_same_step(tmp_path, text_file, monkeypatch):
    straight = train(
        config(tmp_path / "a", text_file, max_steps=6), *tiny_causal_lm("llama", **TINY)
    )
    losses = [h["loss"] for h in straight.metrics["history"]]

    crashed = config(tmp_path / "b", text_file, max_steps=6, save_every=3)
    real_step = LoraTrainer.train_step
    calls = {"n": 0}

    def crash_at_step_5(self, batches):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_step(self, batches)

    monkeypatch.setattr(LoraTrainer, "train_step", crash_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(crashed, *tiny_causal_lm("llama", **TINY))
    monkeypatch.setattr(LoraTrainer, "train_step", real_step)
    assert (tmp_path / "b" / "run" / "checkpoints" / "step-000003").is_dir()
    assert not (tmp_path / "b" / "store").exists()  # nothing stored by the crashed run

    crashed.resume = True
    resumed = train(crashed, *tiny_causal_lm("llama", **TINY))
    history = resumed.metrics["history"]
    assert [h["step"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert [h["loss"] for h in history] == pytest.approx(losses, rel=1e-4)
    assert resumed.metrics["eval_loss"] is None  # eval_fraction 0: nothing held out

    other = config(tmp_path / "b", text_file, max_steps=6, save_every=3, resume=True, batch_size=2)
    with pytest.raises(LingualiftError, match="other data, LoRA settings or batch size"):
        train(other, *tiny_causal_lm("llama", **TINY))


def test_prompt_completion_trains_on_completions_and_mixes_a_selection(tmp_path, tiny):
    data = write_jsonl(
        tmp_path / "pc.jsonl",
        [{"prompt": f"Translate {i}: ", "completion": "habari"} for i in range(8)],
    )
    selection = write_jsonl(
        tmp_path / "selection.jsonl",
        [{"id": f"s{i}", "text": "jambo rafiki", "lang": "sw"} for i in range(4)],
    )
    (tmp_path / "selection.report.json").write_text(json.dumps({"budget": 4}))
    trainer = LoraTrainer(config(tmp_path, data, selection=str(selection), max_steps=2), *tiny)
    trainer.load_data()
    assert len(trainer.train_rows) == 12
    masked = [r for r in trainer.train_rows if r["labels"][0] == -100]
    assert len(masked) == 8  # prompt tokens carry no loss
    result = trainer.fit()
    assert result.adapter.card["selection"]["report"]["budget"] == 4
    assert [d["role"] for d in result.adapter.card["data"]] == ["train", "selection"]


def test_bad_config_is_one_clear_sentence(tmp_path):
    with pytest.raises(LingualiftError, match="No training data"):
        TrainConfig(lang="sw")
    with pytest.raises(LingualiftError, match="Unknown language 'xx-nowhere'"):
        TrainConfig(lang="xx-nowhere", data="x.jsonl")


def test_cli_under_accelerate_launch_single_cpu_process(tmp_path, text_file):
    model_dir = save_tiny_causal_lm(tmp_path / "model", "llama", **TINY)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LINGUALIFT_HOME": str(tmp_path / "home")}
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--cpu",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "lingualift.cli.train",
        "lang=sw",
        f"model={model_dir}",
        f"data={text_file}",
        "max_steps=2",
        "batch_size=2",
        "lora.r=2",
        f"output_dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stored sw/v1" in done.stdout
    store = AdapterStore(tmp_path / "home" / "adapters")
    assert store.card("sw")["metrics"]["steps"] == 2
    assert torch.load  # the subprocess wrote a loadable store; nothing else to check here


def test_next_version_can_start_from_the_current_one(tmp_path, text_file):
    from safetensors.torch import load_file

    first = train(config(tmp_path, text_file, max_steps=3), *tiny_causal_lm("llama", **TINY))
    store = AdapterStore(tmp_path / "store")
    trainer = LoraTrainer(
        config(tmp_path, text_file, max_steps=1, output_dir=str(tmp_path / "run2")),
        *tiny_causal_lm("llama", **TINY),
        init_adapter=store.path("sw"),
    )
    from peft import get_peft_model_state_dict

    start = get_peft_model_state_dict(trainer.model)
    saved = load_file(str(first.adapter.path / "adapter_model.safetensors"))
    assert saved.keys() == start.keys()
    assert all(torch.equal(saved[k], start[k]) for k in saved)
    trainer.load_data()
    assert trainer.fit().adapter.version == 2
