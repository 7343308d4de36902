"""Per-sample log-likelihoods equal lm-evaluation-harness's ``hf`` backend on a local task."""

import pytest

from lingualift.evaluation.mcq import evaluate_mcq, load_mcq
from lingualift.models import load_causal_lm

from .helpers import lm_eval_loglikelihoods

pytest.importorskip("lm_eval")


def test_loglikelihoods_match_lm_eval_hf(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data, out, ref = lm_eval_loglikelihoods(
        tmp_path, "hf", f"pretrained={tiny_model_dir},dtype=float32", n=8
    )
    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    samples = evaluate_mcq(model, tokenizer, load_mcq(data), batch_size=3, progress=False)
    assert len(samples) == len(ref) == 8
    for s in samples:
        assert s.loglikelihoods == pytest.approx(ref[s.id], abs=1e-4)
    acc = sum(s.correct for s in samples) / len(samples)
    assert acc == pytest.approx(out["results"]["tiny_gmmlu"]["acc,none"])
