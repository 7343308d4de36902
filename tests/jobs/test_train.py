"""The train job: data in, an adapter stored with its card, resume, reuse, bad input."""

import json
import os
import subprocess
import sys

import pytest

from lingualift.adapters import AdapterStore, LoraTrainer
from lingualift.errors import LingualiftError
from lingualift.jobs.train import TrainConfig, run_train
from lingualift.testing import save_tiny_causal_lm, tiny_causal_lm
from lingualift.training import LoraSettings, TrainingArgs

from ..helpers import write_jsonl

TINY = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, initializer_range=0.2)


def config(tmp_path, data, steps=4, **kw):
    base = dict(
        lang="sw",
        model="tiny",
        data=str(data),
        lora=LoraSettings(r=4, alpha=8, dropout=0.0),
        train=TrainingArgs(max_steps=steps, batch_size=4, lr=1e-2, schedule="constant"),
        eval_fraction=0.25,
        out_dir=str(tmp_path / "run"),
        store=str(tmp_path / "store"),
    )
    base.update(kw)
    return TrainConfig(**base)


def tiny():
    return tiny_causal_lm("llama", **TINY)


def test_trains_stores_with_a_card_and_reuses_a_finished_run(tmp_path, text_file):
    result = run_train(config(tmp_path, text_file, steps=20), *tiny())
    version = result.adapter
    assert version.current and version.name == "sw/v1" and not result.reused
    card = json.loads((version.path / "card.json").read_text())
    assert card["base_model"]["hidden_size"] == 32 and card["parent"] is None
    assert card["data"][0]["rows"] == 12 and len(card["data"][0]["fingerprint"]) == 64
    assert card["config"]["lora"]["r"] == 4 and card["metrics"]["steps"] == 20
    assert card["run"]["fingerprint"] and (version.path / "loss.png").is_file()
    assert card["metrics"]["eval_loss"] < card["metrics"]["eval_loss_before"]
    assert (tmp_path / "run" / "metrics.json").is_file()
    again = run_train(config(tmp_path, text_file, steps=20), *tiny())
    assert again.reused and again.adapter.name == "sw/v1"
    assert AdapterStore(tmp_path / "store").versions("sw") == [1]  # not stored twice
    with pytest.raises(LingualiftError, match=r"other settings \(train.max_steps: 20 -> 21\)"):
        run_train(config(tmp_path, text_file, steps=21), *tiny())
    child = run_train(
        config(tmp_path, text_file, steps=2, parent="current", out_dir=str(tmp_path / "r2")),
        *tiny(),
    )
    assert child.adapter.card["parent"] == "sw/v1" and child.adapter.version == 2


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, text_file, monkeypatch):
    checkpoints = dict(save_every=3, max_steps=6, batch_size=4, lr=1e-2, schedule="constant")
    straight = run_train(
        config(tmp_path / "a", text_file, train=TrainingArgs(**checkpoints), eval_fraction=0),
        *tiny(),
    )
    losses = [h["loss"] for h in straight.metrics["history"]]
    crashed = config(tmp_path / "b", text_file, train=TrainingArgs(**checkpoints), eval_fraction=0)
    real_step = LoraTrainer.train_step
    calls = {"n": 0}

    def crash_at_step_5(self, batches):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_step(self, batches)

    monkeypatch.setattr(LoraTrainer, "train_step", crash_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        run_train(crashed, *tiny())
    monkeypatch.setattr(LoraTrainer, "train_step", real_step)
    work = tmp_path / "b" / ".run.work"
    assert (work / "checkpoints" / "step-000003").is_dir()
    assert not (tmp_path / "b" / "run").exists() and not (tmp_path / "b" / "store").exists()
    resumed = run_train(crashed, *tiny())
    history = resumed.metrics["history"]
    assert [h["step"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert [h["loss"] for h in history] == pytest.approx(losses, rel=1e-4)
    assert not work.exists()  # the landed run cleans its checkpoints


def test_prompt_completion_data_and_a_selection_with_its_report(tmp_path):
    data = write_jsonl(
        tmp_path / "pc.jsonl",
        [{"prompt": f"Translate {i}: ", "completion": "habari"} for i in range(8)],
    )
    selection = write_jsonl(
        tmp_path / "selection.jsonl",
        [{"id": f"s{i}", "text": "jambo rafiki", "lang": "sw"} for i in range(4)],
    )
    (tmp_path / "selection.report.json").write_text(json.dumps({"budget": 4}))
    result = run_train(
        config(tmp_path, data, steps=2, selection=str(selection), eval_fraction=0), *tiny()
    )
    card = result.adapter.card
    assert card["selection"]["report"]["budget"] == 4
    assert [d["role"] for d in card["data"]] == ["train", "selection"]
    assert [d["format"] for d in card["data"]] == ["prompt_completion", "text"]


def test_bad_config_is_one_clear_sentence(tmp_path):
    with pytest.raises(LingualiftError, match="No training data"):
        TrainConfig(lang="sw")
    with pytest.raises(LingualiftError, match="Unknown language 'xx-nowhere'"):
        TrainConfig(lang="xx-nowhere", data="x.jsonl")
    with pytest.raises(LingualiftError, match="is a folder"):
        run_train(TrainConfig(lang="sw", data=str(tmp_path)))


def test_cli_under_accelerate_launch_single_cpu_process(tmp_path, text_file):
    model_dir = save_tiny_causal_lm(tmp_path / "model", "llama", **TINY)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LINGUALIFT_HOME": str(tmp_path / "home")}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "lingualift.cli.train", "lang=sw", f"model={model_dir}", f"data={text_file}",
        "train.max_steps=2", "train.batch_size=2", "lora.r=2", f"out_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stored sw/v1" in done.stdout
    store = AdapterStore(tmp_path / "home" / "adapters")
    assert store.card("sw")["metrics"]["steps"] == 2
