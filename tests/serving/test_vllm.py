"""The vLLM hand-off: the command names the local base model and every current adapter."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
from pathlib import Path

import httpx
import pytest

from lingualift.adapters import AdapterStore
from lingualift.cli import main
from lingualift.data.traffic import read_segments
from lingualift.errors import LingualiftError
from lingualift.jobs.serve import serve
from lingualift.models import embedded_cache_path
from lingualift.serving.server import free_port
from lingualift.serving.vllm import (
    RUNTIME_LORA_ENV,
    SHIFCON_NOTE,
    adapter_rank,
    vllm_adapter_problems,
    vllm_executable,
    vllm_max_lora_rank,
    vllm_plan,
)

from ..adapters.conftest import add_version
from .conftest import SWAHILI, openai_client, serve_config, wait_for


def test_the_command_names_every_current_adapter_after_one_lora_modules_flag(model_dir, store):
    add_version(store, "sw", 3, promote=False)  # sw/v2 exists, sw/v1 stays current
    plan = vllm_plan(str(model_dir), store, port=8001, served_model_name="tiny")
    command = plan.command
    assert command[:3] == ["vllm", "serve", str(model_dir.resolve())]
    assert command[command.index("--port") + 1] == "8001"
    assert command[command.index("--served-model-name") + 1] == "tiny"
    assert "--enable-lora" in command and command.count("--lora-modules") == 1
    assert command[command.index("--max-loras") + 1] == "3"  # two adapters and a spare slot
    assert command[command.index("--max-lora-rank") + 1] == "8"  # r=4 rounds up to 8
    modules = command[command.index("--lora-modules") + 1 :]
    assert modules == [
        f"fr={(store.root / 'fr' / 'v1').resolve()}",
        f"sw={(store.root / 'sw' / 'v1').resolve()}",
    ]
    assert SHIFCON_NOTE in plan.notes
    # vLLM serves its runtime LoRA routes (live promotions) only with this variable.
    assert plan.env == {RUNTIME_LORA_ENV: "True"}
    assert plan.shell_command().startswith(f"{RUNTIME_LORA_ENV}=True vllm serve ")


def test_store_folders_are_what_vllm_loads(store):
    for version in store.list():
        folder = version.path
        config = json.loads((folder / "adapter_config.json").read_text())
        assert config["r"] == 4 and config["lora_alpha"] == 8 and config["target_modules"]
        assert config["peft_type"] == "LORA" and not config.get("use_dora")
        assert (folder / "adapter_model.safetensors").is_file()
        assert vllm_adapter_problems(folder) == []
    folder = store.path("sw")
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    assert "DoRA" in vllm_adapter_problems(folder)[0]
    with pytest.raises(LingualiftError, match="vLLM cannot serve sw/v1"):
        vllm_plan("some-org/some-model", store)  # a hub id: only the adapters are checked
    (folder / "adapter_config.json").write_text(json.dumps({**config, "r": 0}))
    assert any("no r" in p for p in vllm_adapter_problems(folder))


@pytest.mark.parametrize(("ranks", "expected"), [([4], 8), ([8, 12], 16), ([300], 320), ([], 8)])
def test_max_lora_rank_rounds_up_to_a_value_vllm_accepts(ranks, expected):
    assert vllm_max_lora_rank(ranks) == expected


def test_a_rank_beyond_vllm_and_rank_patterns_are_seen(store):
    with pytest.raises(LingualiftError, match="up to 512"):
        vllm_max_lora_rank([600])
    folder = store.path("fr")
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(
        json.dumps({**config, "rank_pattern": {"q_proj": 24}})
    )
    assert adapter_rank(folder) == 24


def test_the_embedded_model_is_named_by_its_local_folder_not_the_hub_id(model_dir, store):
    # Stand in for the dequantized cache with the tiny model (same shapes as the adapters).
    cache = embedded_cache_path("gemma-3-270m")
    shutil.copytree(model_dir, cache, dirs_exist_ok=True)
    plan = vllm_plan("embedded:gemma-3-270m", store)
    assert plan.command[2] == str(cache.resolve()) and plan.base_model == str(cache.resolve())
    assert "google/gemma-3-270m" not in " ".join(plan.command)
    assert plan.command[plan.command.index("--served-model-name") + 1] == "embedded:gemma-3-270m"


def test_adapters_of_another_base_model_and_odd_paths(model_dir, tmp_path):
    other = AdapterStore(tmp_path / "other")
    add_version(other, "sw", 1, hidden_size=48)
    with pytest.raises(LingualiftError, match="trained on a different base model"):
        vllm_plan(str(model_dir), other)
    odd = AdapterStore(tmp_path / "a=b,c")
    add_version(odd, "fr", 2)
    module = vllm_plan(str(model_dir), odd, served_model_name="tiny").command[-1]
    assert json.loads(module) == {
        "name": "fr",
        "path": str((odd.root / "fr" / "v1").resolve()),
        "base_model_name": "tiny",
    }
    empty = vllm_plan(str(model_dir), AdapterStore(tmp_path / "none"))
    assert "--enable-lora" not in empty.command and "base model only" in empty.notes[-1]


def test_the_verb_prints_the_command_and_never_the_key(model_dir, store, capsys):
    argv = ["serve", "--engine", "vllm", f"model={model_dir}", f"store={store.root}"]
    assert main([*argv, "api_key=s3cret"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{RUNTIME_LORA_ENV}=True vllm serve ")
    assert "--lora-modules" in captured.out
    assert "s3cret" not in captured.out + captured.err
    assert "VLLM_API_KEY" in captured.err and "sync_adapters=true" in captured.err


def test_run_without_vllm_installed_is_one_sentence_and_exit_2(model_dir, store, capsys):
    assert vllm_executable() is None  # this machine has no vLLM
    argv = ["serve", "--engine", "vllm", f"model={model_dir}", f"store={store.root}", "--run"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("error: engine=vllm run=true needs vLLM installed")


def fake_vllm_on_path(folder: Path, monkeypatch) -> None:
    """A ``vllm`` executable that serves the fake vLLM (tests/serving/fake_vllm.py)."""
    folder.mkdir()
    repo = Path(__file__).resolve().parents[2]
    script = folder / "vllm"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(repo)!r})\n"
        "from tests.serving.fake_vllm import main\nmain(sys.argv[1:])\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")


def test_run_starts_vllm_behind_the_front_and_promotions_reach_it_live(
    model_dir, store, tmp_path, monkeypatch
):
    fake_vllm_on_path(tmp_path / "bin", monkeypatch)
    front_port, vllm_port = free_port(), free_port()
    config = serve_config(
        model_dir, store, tmp_path, engine="vllm", run=True, port=front_port,
        vllm_port=vllm_port, reload_interval_s=0.1, api_key="k",
    )  # fmt: skip
    ended: dict = {}
    thread = threading.Thread(target=lambda: ended.update(code=serve(config)), daemon=True)
    thread.start()
    front, vllm = f"http://127.0.0.1:{front_port}", f"http://127.0.0.1:{vllm_port}"

    def adapters():
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{front}/health").json().get("adapters")

    try:
        wait_for(lambda: adapters() == {"fr": "fr/v1", "sw": "sw/v1"}, 60, "vLLM and the front")
        state = httpx.get(f"{vllm}/fake/state").json()
        assert state["env"] == {RUNTIME_LORA_ENV: "True", "VLLM_API_KEY": "k"}
        argv = state["argv"]
        assert argv[argv.index("--host") + 1] == "127.0.0.1"  # vLLM only behind the front
        assert argv[argv.index("--max-loras") + 1] == "3" and "--enable-lora" in argv
        client = openai_client(front, api_key="k")
        assert client.completions.create(model="auto", prompt=SWAHILI, max_tokens=2).model == "sw"
        add_version(store, "sw", 3)  # promoted: the front loads it into the running vLLM
        wait_for(lambda: (adapters() or {}).get("sw") == "sw/v2", 10, "the promotion")
        answer = client.completions.create(model="auto", prompt=SWAHILI, max_tokens=2)
        assert answer.model == "sw@v2"
    finally:
        httpx.post(f"{vllm}/fake/exit")  # vLLM exits with code 3: the front stops with it
        thread.join(30)
    assert ended == {"code": 3}
    rows = list(read_segments(tmp_path / "traffic"))
    assert [(r["lang"], r["adapter"]) for r in rows] == [("sw", "sw/v1"), ("sw", "sw/v2")]
