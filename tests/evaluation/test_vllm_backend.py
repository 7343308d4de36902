"""``eval backend=vllm``: lm-eval's ``vllm`` model with the adapter (vLLM itself cannot run here,
so the call lm-eval gets is checked, and lm-eval's own VLLM class is read for the names)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from lingualift.cli import main
from lingualift.errors import LingualiftError
from lingualift.jobs.eval import EvalConfig, run_eval, vllm_model_args

pytest.importorskip("lm_eval")


@pytest.fixture()
def adapter(tiny_model_dir, tmp_path):
    """A PEFT LoRA folder with rank 24 (above lm-eval's default max_lora_rank of 16)."""
    from peft import LoraConfig, get_peft_model

    from lingualift.models import load_causal_lm

    model, _ = load_causal_lm(str(tiny_model_dir))
    folder = tmp_path / "adapters" / "sw-lora"
    get_peft_model(model, LoraConfig(r=24, target_modules=["q_proj"])).save_pretrained(folder)
    return folder


def test_the_model_args_name_the_base_folder_and_the_adapter_with_a_rank_that_fits(
    tiny_model_dir, adapter
):
    config = EvalConfig(
        backend="vllm",
        model=str(tiny_model_dir),
        adapters=str(adapter),
        dtype="bf16",
        seed=7,
        lm_eval_tasks="global_mmlu_full_sw",
        lm_eval_model_args="max_model_len=4096,gpu_memory_utilization=0.85",
    )
    assert vllm_model_args(config) == {
        "pretrained": str(tiny_model_dir.resolve()),
        "dtype": "bfloat16",
        "seed": 7,
        "lora_local_path": str(adapter.resolve()),
        "max_lora_rank": 32,  # r=24, rounded up to a rank vLLM accepts
        "max_model_len": 4096,
        "gpu_memory_utilization": 0.85,
    }
    base_only = vllm_model_args(EvalConfig(backend="vllm", model=str(tiny_model_dir)))
    assert "lora_local_path" not in base_only and "max_lora_rank" not in base_only


def test_every_name_is_an_argument_of_lm_evals_vllm_model():
    """lm-eval imports vllm at the top of its module, so read its signature from the source."""
    import ast

    import lm_eval

    source = Path(lm_eval.__file__).parent / "models" / "vllm_causallms.py"
    tree = ast.parse(source.read_text())
    (init,) = [
        node
        for cls in tree.body
        if isinstance(cls, ast.ClassDef) and cls.name == "VLLM"
        for node in cls.body
        if isinstance(node, ast.FunctionDef) and node.name == "__init__"
    ]
    named = {a.arg for a in init.args.args}
    assert {"pretrained", "dtype", "seed", "lora_local_path", "max_lora_rank"} <= named
    # enable_lora is not an argument: lm-eval turns it on when lora_local_path is given.
    assert (
        "enable_lora" not in named
        and '"enable_lora": bool(lora_local_path)' in inspect.cleandoc(source.read_text())
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"shifcon": "runs/shifcon"}, "cannot apply ShifCon"),
        ({"adapters": "a+b"}, "one adapter per run"),
        ({"lm_eval_model_args": "max_model_len"}, "is not k=v pairs"),
    ],
)
def test_what_vllm_cannot_do_is_refused_in_one_sentence(tiny_model_dir, overrides, message):
    config = EvalConfig(backend="vllm", model=str(tiny_model_dir), **overrides)
    with pytest.raises(LingualiftError, match=message):
        vllm_model_args(config)


def test_an_adapter_vllm_cannot_load_is_refused(tiny_model_dir, adapter):
    config_path = adapter / "adapter_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "use_dora": True}))
    config = EvalConfig(backend="vllm", model=str(tiny_model_dir), adapters=str(adapter))
    with pytest.raises(LingualiftError, match="vLLM cannot load the adapter: .* DoRA"):
        vllm_model_args(config)


def test_without_vllm_installed_the_verb_says_so_in_one_line(tiny_model_dir, tmp_path, capsys):
    argv = ["eval", "backend=vllm", f"model={tiny_model_dir}", "lm_eval_tasks=global_mmlu_full_sw"]
    assert main([*argv, f"out_dir={tmp_path / 'results'}"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: backend=vllm needs vLLM installed")
    assert not (tmp_path / "results").exists()


def test_lm_eval_gets_the_vllm_model_and_the_run_is_named_like_the_other_backends(
    tiny_model_dir, adapter, tmp_path, monkeypatch
):
    import lm_eval

    import lingualift.serving.vllm as vllm_module
    from lingualift.evaluation.results import adapter_sha

    calls = []

    def simple_evaluate(**kwargs):
        calls.append(kwargs)
        return {
            "results": {"t": {"alias": "t", "acc,none": 0.5, "acc_stderr,none": 0.1}},
            "configs": {"t": {"task": "t"}},
            "versions": {"t": 1.0},
            "n-shot": {"t": 0},
            "higher_is_better": {"t": {"acc": True}},
            "config": {"model": kwargs["model"], "model_args": kwargs["model_args"]},
        }

    monkeypatch.setattr(vllm_module, "vllm_installed", lambda: True)
    monkeypatch.setattr(lm_eval, "simple_evaluate", simple_evaluate)
    config = EvalConfig(
        backend="vllm",
        model=str(tiny_model_dir),
        adapters=str(adapter),
        lm_eval_tasks="t",
        batch_size=32,
        out_dir=str(tmp_path / "results"),
    )
    out = run_eval(config, print_table=False)
    (call,) = calls
    assert call["model"] == "vllm" and call["model_args"] == vllm_model_args(config)
    assert call["tasks"] == ["t"] and call["batch_size"] == 32
    assert out["model_name"] == str(adapter)  # as backend=lm-eval names a run with peft=
    assert out["config"]["peft_sha"] == adapter_sha(str(adapter))
    (results,) = (tmp_path / "results").rglob("results_*.json")
    assert results.parent.name == out["model_name_sanitized"]
