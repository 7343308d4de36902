"""Per-sample log-likelihoods equal lm-evaluation-harness's ``hf`` backend on a local task."""

import pytest

from lingualift.evaluation.mcq import evaluate_mcq, load_mcq
from lingualift.models import load_causal_lm

from ..helpers import write_jsonl
from .helpers import lm_eval_task, mcq_rows

lm_eval = pytest.importorskip("lm_eval")


def test_loglikelihoods_match_lm_eval_hf(tiny_model_dir, tmp_path, monkeypatch):
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data = write_jsonl(tmp_path / "test.jsonl", mcq_rows(8, "sw"))
    tasks = lm_eval_task(tmp_path / "tasks", data)
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={tiny_model_dir},dtype=float32",
        tasks=["tiny_gmmlu"],
        task_manager=TaskManager(include_path=str(tasks)),
        log_samples=True,
        batch_size=4,
        device="cpu",
    )
    ref = {
        s["doc"]["sample_id"]: [r[0][0] for r in s["resps"]] for s in out["samples"]["tiny_gmmlu"]
    }
    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    samples = evaluate_mcq(model, tokenizer, load_mcq(data), batch_size=3, progress=False)
    assert len(samples) == len(ref) == 8
    for s in samples:
        assert s.loglikelihoods == pytest.approx(ref[s.id], abs=1e-4)
    acc = sum(s.correct for s in samples) / len(samples)
    assert acc == pytest.approx(out["results"]["tiny_gmmlu"]["acc,none"])
