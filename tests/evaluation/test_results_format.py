"""``lingualift eval`` writes what lm-eval's ``EvaluationTracker`` writes, read by lm-eval's tools."""

import json

import pytest

from lingualift.cli import main
from lingualift.evaluation.report import per_language

from ..helpers import write_jsonl
from .helpers import mcq_rows

lm_eval = pytest.importorskip("lm_eval")


def test_results_and_samples_read_by_lm_eval_tools(tiny_model_dir, tmp_path, capsys):
    from lm_eval.result_schema import EvalResults, SampleResult
    from lm_eval.utils import get_file_datetime, get_file_task_name, hash_string, make_table

    write_jsonl(tmp_path / "gm" / "sw_test.jsonl", mcq_rows(4, "sw"))
    write_jsonl(tmp_path / "gm" / "yo_test.jsonl", mcq_rows(2, "yo"))
    out = tmp_path / "runs" / "base.json"
    argv = ["eval", f"model={tiny_model_dir}", f"data={tmp_path / 'gm'}", f"out={out}"]
    assert main([*argv, "log_samples=true"]) == 0
    results = json.loads(out.read_text())
    assert set(EvalResults.__annotations__) - {"samples"} <= set(results)
    assert results["model_source"] == "lingualift"
    assert results["model_name"] == str(tiny_model_dir)
    assert results["config"]["model_args"].startswith(f"pretrained={tiny_model_dir}")
    table = make_table(results)
    assert "global_mmlu_full_sw_astronomy" in table and "acc" in table
    assert "- global_mmlu_full_sw" in table  # nested under the overall group
    assert "global_mmlu_full_yo" in make_table(results, "groups")
    for metrics in results["results"].values():
        assert "n" not in metrics  # counts are not metrics
    files = sorted(out.parent.glob("samples_*.jsonl"))
    assert {get_file_task_name(f.name) for f in files} == set(results["configs"])
    for path in files:
        task = get_file_task_name(path.name)
        assert get_file_datetime(path.name)
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(records) == results["n-samples"][task]["effective"]
        for record in records:
            assert set(SampleResult.__annotations__) <= set(record)
            assert record["arguments"]["gen_args_0"]["arg_1"] == " A"
        joined = "".join(r["doc_hash"] + r["prompt_hash"] + r["target_hash"] for r in records)
        assert results["task_hashes"][task] == hash_string(joined)
    assert per_language(results) == {
        "sw": results["results"]["global_mmlu_full_sw"]["acc,none"],
        "yo": results["results"]["global_mmlu_full_yo"]["acc,none"],
    }


def test_report_still_reads_the_earlier_layout():
    old = {
        "results": {
            "global_mmlu": {"alias": "global_mmlu", "acc,none": 0.5, "n": 6},
            "global_mmlu_sw_astronomy": {"alias": "  - astronomy", "acc,none": 1.0, "n": 2},
            "global_mmlu_sw": {"alias": " - global_mmlu_sw", "acc,none": 0.25, "n": 4},
        }
    }
    assert per_language(old) == {"sw": 0.25}


def test_lm_eval_backend_names_the_run_and_writes_sample_files(
    tiny_model_dir, tmp_path, monkeypatch
):
    from lm_eval.utils import make_table
    from peft import LoraConfig, get_peft_model

    from lingualift.models import load_causal_lm

    from .helpers import lm_eval_task

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    model, _ = load_causal_lm(str(tiny_model_dir))
    adapter = tmp_path / "adapter"
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(adapter)
    data = write_jsonl(tmp_path / "test.jsonl", mcq_rows(2, "sw"))
    tasks = lm_eval_task(tmp_path / "tasks", data, name="tiny_gmmlu_sw")
    out = tmp_path / "runs" / "lm.json"
    argv = ["eval", "backend=lm-eval", f"model={tiny_model_dir}", f"adapters={adapter}"]
    argv += ["lm_eval_tasks=tiny_gmmlu_sw", f"lm_eval_include_path={tasks}", f"out={out}"]
    assert main([*argv, "log_samples=true", "device=cpu"]) == 0
    results = json.loads(out.read_text())
    assert results["model_name"] == str(adapter) and "samples" not in results
    assert results["task_hashes"]["tiny_gmmlu_sw"]
    (samples,) = out.parent.glob("samples_tiny_gmmlu_sw_*.jsonl")
    assert len(samples.read_text().splitlines()) == 2
    assert "tiny_gmmlu_sw" in make_table(results)
