"""Several processes: ``lingualift train`` under ``accelerate launch`` with the shipped configs.

DDP with 2 CPU processes (gloo) trains the tiny model to the adapter one process trains with
the same global batch (each process takes batch_size rows of every micro-batch, see
``LoraTrainer.micro_batches``). FSDP: torch shards on the CPU, but accelerate's FSDP plugin
refuses a machine without an accelerator device, so on a CPU-only machine the launch is
refused in one sentence, and on a machine with two GPUs this test launches FSDP and compares
its adapter as it does DDP's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lingualift.jobs.train import TrainConfig, run_train
from lingualift.testing import save_tiny_causal_lm
from lingualift.training import LoraSettings, TrainingArgs

ACCELERATE = Path(__file__).parents[1] / "recipes" / "accelerate"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny model and rows of one length (no padding: every process's mean loss weighs its
    tokens as the one process does)."""
    root = tmp_path_factory.mktemp("distributed")
    model = save_tiny_causal_lm(root / "model", "llama", hidden_size=64, num_layers=2)
    rows = [f"habari ya asubuhi rafiki yangu mpendwa {i:03d} na {7 * i:04d}" for i in range(32)]
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps({"text": t, "lang": "sw"}) + "\n" for t in rows))
    return {"root": root, "model": model, "data": data}


def _words(world, out: Path, batch_size: int) -> list[str]:
    return [
        "train", "lang=sw", f"data={world['data']}", f"model={world['model']}",
        f"out_dir={out / 'run'}", f"store={out / 'store'}", "train.max_steps=4",
        "train.max_length=64", "train.lr=1e-2", "train.grad_accum=2", "train.save_every=0",
        f"train.batch_size={batch_size}", "lora.dropout=0", "eval_fraction=0",
        "train.report_to=none",
    ]  # fmt: skip


def _launch(config: str, words: list[str], processes: int = 2) -> subprocess.CompletedProcess:
    with socket.socket() as sock:  # a free port: other runs may use accelerate's default
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE / config),
        "--num_processes", str(processes), "--main_process_port", str(port),
        "-m", "lingualift.cli", *words,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def _adapter(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "store" / "sw" / "v1" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def one_process(world, one_thread_module):
    """The reference: one process, micro-batches of 2 rows."""
    out = world["root"] / "one"
    run_train(
        TrainConfig(
            lang="sw",
            data=str(world["data"]),
            model=str(world["model"]),
            out_dir=str(out / "run"),
            store=str(out / "store"),
            eval_fraction=0,
            lora=LoraSettings(dropout=0),
            train=TrainingArgs(
                max_steps=4, max_length=64, lr=1e-2, grad_accum=2, batch_size=2, report_to="none"
            ),
        )
    )
    return _adapter(out)


@pytest.fixture(scope="module")
def one_thread_module():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_ddp_with_two_processes_trains_the_one_process_adapter(world, one_process):
    out = world["root"] / "ddp"
    done = _launch("ddp.yaml", _words(world, out, batch_size=1))
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    one = json.loads((world["root"] / "one" / "run" / "metrics.json").read_text())
    assert metrics["tokens"] == one["tokens"]  # both processes' rows were counted
    ddp = _adapter(out)
    assert ddp.keys() == one_process.keys()
    for name, value in one_process.items():
        torch.testing.assert_close(ddp[name], value, rtol=1e-4, atol=1e-5, msg=name)
    # Only the main process stored a version (one v1, no v2 from the other process).
    assert sorted(p.name for p in (out / "store" / "sw").glob("v*")) == ["v1"]


def test_fsdp_shards_on_gpus_and_is_refused_in_one_sentence_without_one(
    world, one_process, monkeypatch, capsys
):
    out = world["root"] / "fsdp"
    if torch.cuda.device_count() >= 2:  # where accelerate can shard: the same adapter as DDP's
        done = _launch("fsdp.yaml", _words(world, out, batch_size=1))
        assert done.returncode == 0, done.stderr[-3000:]
        for name, value in _adapter(out).items():
            torch.testing.assert_close(value.cpu(), one_process[name], rtol=1e-3, atol=1e-4)
        return
    # torch itself shards on the CPU (gloo); accelerate 1.15 does not: its FSDP plugin with
    # sync_module_states (what loading big models once needs) refuses a machine without an
    # accelerator device, and its state keeps FSDP for GPU-class backends (MULTI_CPU drops it).
    from accelerate.utils import FullyShardedDataParallelPlugin

    from lingualift.cli import main

    with pytest.raises(RuntimeError, match="no available devices found"):
        FullyShardedDataParallelPlugin(sync_module_states=True)
    # So lingualift refuses the FSDP launch up front (here the environment `accelerate launch
    # --config_file recipes/accelerate/fsdp.yaml` gives each process, in this process).
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert main(_words(world, out, batch_size=1)) == 2
    assert capsys.readouterr().err.strip() == (
        "error: FSDP runs on GPUs only (accelerate's FSDP plugin needs a CUDA or other "
        "accelerator device); on a machine without one launch with recipes/accelerate/ddp.yaml."
    )
    assert not (out / "store").exists()  # refused before anything loads or is written


@pytest.mark.parametrize("name", ["ddp.yaml", "fsdp.yaml"])
def test_the_launch_configs_load_and_their_headers_show_lingualift_commands_that_parse(name):
    import shlex

    from accelerate.commands.config.config_args import load_config_from_file

    from lingualift.cli import build_parser
    from lingualift.cli._common import config_from_args

    path = ACCELERATE / name
    config = load_config_from_file(str(path))
    assert config.distributed_type in ("MULTI_GPU", "FSDP")
    if name == "fsdp.yaml":  # PEFT's FSDP guide: full sharding, LoRA in its own flat params
        assert config.fsdp_config["fsdp_sharding_strategy"] == "FULL_SHARD"
        assert config.fsdp_config["fsdp_use_orig_params"] is False
    commands, current = [], ""
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if current or text.startswith("accelerate launch "):
            current += text.removesuffix("\\").strip() + " "
            if not text.endswith("\\"):
                commands.append(current.removeprefix("accelerate launch "))
                current = ""
    assert commands, f"{name}: the header shows no accelerate launch command"
    for command in commands:
        words = shlex.split(command)
        assert words[:2] == ["--config_file", f"recipes/accelerate/{name}"]
        argv = words[words.index("lingualift.cli") + 1 :]
        config_from_args(build_parser().parse_args(argv))  # the lingualift part loads
