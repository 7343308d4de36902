"""Training curves go to accelerate's trackers: which ones, what is logged, reduced across ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.tracking import GeneralTracker

import lingualift
from lingualift import training
from lingualift.config import settings_of
from lingualift.errors import LingualiftError
from lingualift.training import TrainingArgs, resolve_trackers

SRC = str(Path(lingualift.__file__).resolve().parents[1])


class Recorder(GeneralTracker):
    """A tracker that keeps what it is sent."""

    name = "recorder"
    requires_logging_directory = False

    def __init__(self) -> None:
        super().__init__()
        self.config: dict = {}
        self.logged: list[tuple[int, dict]] = []
        self.finished = False

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values: dict) -> None:
        self.config = dict(values)

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        self.logged.append((step, dict(values)))

    def finish(self) -> None:
        self.finished = True


def test_report_to_picks_installed_trackers(monkeypatch):
    import accelerate.utils

    monkeypatch.setattr(accelerate.utils, "is_tensorboard_available", lambda: False)
    assert resolve_trackers("auto") == [] and resolve_trackers("none") == []
    monkeypatch.setattr(accelerate.utils, "is_tensorboard_available", lambda: True)
    assert resolve_trackers("auto") == ["tensorboard"]
    monkeypatch.setattr(accelerate.utils, "is_wandb_available", lambda: False)
    with pytest.raises(LingualiftError, match="report_to=wandb needs the wandb package"):
        resolve_trackers("tensorboard,wandb")
    with pytest.raises(LingualiftError, match="report_to must be auto, none or some of"):
        TrainingArgs(report_to="neptune")
    settings = settings_of(TrainingArgs(report_to="none", save_every=5))
    assert "report_to" not in settings and "save_every" not in settings and settings["lr"] == 2e-4


def test_lora_training_logs_each_step_and_the_held_out_loss(monkeypatch, tmp_path, one_thread):
    from lingualift.adapters import LoraTrainer
    from lingualift.adapters.data import Example
    from lingualift.testing import tiny_causal_lm
    from lingualift.training import LoraSettings

    recorder = Recorder()
    monkeypatch.setattr(training, "resolve_trackers", lambda report_to: [recorder])
    model, tokenizer = tiny_causal_lm("llama", hidden_size=32, num_layers=2)
    args = TrainingArgs(max_steps=3, batch_size=2, max_length=32, report_to="tensorboard")
    trainer = LoraTrainer(model, tokenizer, args, LoraSettings(r=2), run_dir=tmp_path)
    examples = [Example(id=str(i), kind="text", text=f"habari {i} rafiki") for i in range(8)]
    trainer.load_data(examples[:6], examples[6:])
    trained = trainer.fit(eval_every=2, progress=False)
    steps: dict[int, dict] = {}
    for step, values in recorder.logged:
        steps.setdefault(step, {}).update(values)
    history = {h["step"]: h["loss"] for h in trained.metrics["history"]}
    assert {s for s in steps if "train/loss" in steps[s]} == {1, 2, 3}
    assert all(steps[s]["train/loss"] == pytest.approx(history[s]) for s in history)
    assert "train/lr" in steps[1]
    evals = sorted(s for s, v in recorder.logged if "eval/loss" in v)
    assert evals == [0, 2, 3]
    assert recorder.config["lr"] == args.lr and recorder.config["lora_r"] == 2
    assert recorder.finished


def test_logged_loss_is_the_mean_over_processes(tmp_path):
    """Under two processes each rank's loss differs; both report their mean."""
    script = tmp_path / "ranks.py"
    script.write_text(
        f"""
import json, torch
from lingualift.training import TrainingArgs, TrainingLoop
model = torch.nn.Linear(2, 1)
loop = TrainingLoop(model, TrainingArgs(max_steps=1, report_to="none"), run_dir={str(tmp_path)!r},
                    fingerprint=lambda: {{}}, settings="x")
rank = loop.accelerator.process_index
def loss_fn(batch, backward):
    loss = loop.model(torch.ones(1, 2)).sum() * 0 + float(rank + 1)
    backward(loss)
    return {{"loss": loss}}
# One file per rank: two processes printing to one pipe can interleave their lines.
report = {{"rank": rank, "loss": loop.train_step([None], loss_fn)["loss"]}}
open({str(tmp_path)!r} + f"/rank{{rank}}.json", "w").write(json.dumps(report))
"""
    )
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(port), str(script),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    reports = [json.loads(path.read_text()) for path in tmp_path.glob("rank*.json")]
    assert sorted(r["rank"] for r in reports) == [0, 1]
    assert all(r["loss"] == pytest.approx(1.5) for r in reports)


def test_tensorboard_event_files_land_in_the_run_folder(tmp_path, one_thread):
    pytest.importorskip("tensorboard")
    from lingualift.jobs.train import TrainConfig, run_train
    from lingualift.testing import save_tiny_causal_lm

    model_dir = save_tiny_causal_lm(tmp_path / "model", "llama", hidden_size=32, num_layers=2)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": f"habari {i}"}) + "\n" for i in range(6)))
    config = TrainConfig(
        lang="sw",
        model=str(model_dir),
        data=str(data),
        train=TrainingArgs(max_steps=2, batch_size=2, report_to="tensorboard"),
        out_dir=str(tmp_path / "run"),
        store=str(tmp_path / "store"),
    )
    run_train(config)
    losses = read_scalars(tmp_path / "run" / "logs" / "lingualift")["train/loss"]
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert [step for step, _ in losses] == [1, 2]
    assert [value for _, value in losses] == pytest.approx([h["loss"] for h in history])


def read_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard event files in ``folder``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_where_trackers_write_config_then_environment_then_run_folder(monkeypatch, tmp_path):
    from lingualift.tracking import (
        TrackerSettings,
        mlflow_experiment,
        mlflow_uri,
        wandb_entity,
        wandb_project,
    )

    for name in ("WANDB_PROJECT", "WANDB_ENTITY", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    plain = TrackerSettings()
    assert wandb_project(plain) == "lingualift" and wandb_entity(plain) is None
    assert mlflow_experiment(plain) == "lingualift"
    assert mlflow_uri(plain, tmp_path / "logs") == (tmp_path / "logs" / "mlruns").as_uri()
    monkeypatch.setenv("WANDB_PROJECT", "env-project")
    monkeypatch.setenv("WANDB_ENTITY", "env-team")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "env-experiment")
    assert (wandb_project(plain), wandb_entity(plain)) == ("env-project", "env-team")
    assert (mlflow_experiment(plain), mlflow_uri(plain, tmp_path)) == (
        "env-experiment", "http://127.0.0.1:5000",
    )  # fmt: skip
    mine = TrackerSettings(tracker_project="p", tracker_entity="e", tracker_uri="sqlite:///x.db")
    assert (wandb_project(mine), wandb_entity(mine)) == ("p", "e")
    assert (mlflow_experiment(mine), mlflow_uri(mine, tmp_path)) == ("p", "sqlite:///x.db")
    with pytest.raises(LingualiftError, match="mixes auto or none with trackers"):
        resolve_trackers("none,tensorboard")


def tiny_loop(tmp_path, **args):
    import torch

    from lingualift.training import TrainingLoop

    model = torch.nn.Linear(2, 1)
    settings = TrainingArgs(max_steps=2, **args)
    loop = TrainingLoop(
        model, settings, run_dir=tmp_path / "run", fingerprint=lambda: {}, settings="x"
    )
    loop.start_tracking({"lang": "sw"})
    loop.log({"train/loss": 0.75}, step=1)
    loop.log({"train/loss": 0.5}, step=2)
    return loop


def test_wandb_offline_follows_wandb_project_unless_the_config_names_one(monkeypatch, tmp_path):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_PROJECT", "env-project")
    monkeypatch.setenv("WANDB_ENTITY", "env-team")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")

    import wandb

    loop = tiny_loop(tmp_path / "a", report_to="wandb")
    run = loop.accelerator.get_tracker("wandb", unwrap=True)
    loop.end_tracking()
    wandb.teardown()  # W&B's service writes the run's records after finish(); wait for it
    assert (run.project, run.entity, run.name) == ("env-project", "env-team", "run")
    assert run.config["lang"] == "sw" and run.config["lr"] == 2e-4
    # The offline run lies in the run's logs/ folder and names the project it will sync to.
    [record] = (tmp_path / "a" / "run" / "logs" / "wandb").glob("offline-run-*/run-*.wandb")
    written = record.read_bytes()
    assert b"env-project" in written and b"train/loss" in written

    loop = tiny_loop(tmp_path / "b", report_to="wandb", tracker_project="cfg-project")
    run = loop.accelerator.get_tracker("wandb", unwrap=True)
    loop.end_tracking()
    assert run.project == "cfg-project"


def test_mlflow_logs_to_the_run_folder_or_where_the_user_says(monkeypatch, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    # Restored to absent afterwards: the tracker opts into MLflow's folder store itself.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")

    def logged(uri, experiment="lingualift"):
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        [run] = client.search_runs([found.experiment_id])
        history = client.get_metric_history(run.info.run_id, "train/loss")
        return run, [(m.step, m.value) for m in history]

    tiny_loop(tmp_path / "a", report_to="mlflow").end_tracking()
    store = tmp_path / "a" / "run" / "logs" / "mlruns"
    run, history = logged(store.as_uri())
    assert history == [(1, 0.75), (2, 0.5)] and run.info.status == "FINISHED"
    assert run.data.params["lang"] == "sw" and run.info.run_name == "run"

    elsewhere = (tmp_path / "server-store").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "env-experiment")
    tiny_loop(tmp_path / "b", report_to="mlflow").end_tracking()
    assert logged(elsewhere, "env-experiment")[1] == [(1, 0.75), (2, 0.5)]
    assert not (tmp_path / "b" / "run" / "logs" / "mlruns").exists()

    configured = (tmp_path / "configured").as_uri()
    tiny_loop(
        tmp_path / "c", report_to="mlflow", tracker_uri=configured, tracker_project="mine"
    ).end_tracking()
    assert logged(configured, "mine")[1] == [(1, 0.75), (2, 0.5)]
