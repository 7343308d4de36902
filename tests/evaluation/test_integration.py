"""The embedded Gemma 3 270M: perplexity separates languages, MCQ scoring runs end to end."""

import math

import pytest

from lingualift.data import ParallelCorpus
from lingualift.evaluation import perplexity_by_language
from lingualift.evaluation.mcq import evaluate_mcq, load_mcq

from ..helpers import write_jsonl
from .helpers import mcq_rows


@pytest.mark.integration
def test_embedded_model_perplexity_and_mcq(tmp_path):
    from lingualift.models import load_causal_lm

    model, tokenizer = load_causal_lm("embedded:gemma-3-270m")
    records = ParallelCorpus().multilingual(["en", "sw"], "gospels", per_language=8)
    ppl = perplexity_by_language(model, tokenizer, records, max_length=128, batch_size=8)
    assert all(math.isfinite(r.perplexity) for r in ppl.values())
    # A 270M model trained mostly on English finds English gospel text far likelier.
    assert ppl["en"].perplexity < ppl["sw"].perplexity
    samples = evaluate_mcq(
        model, tokenizer, load_mcq(write_jsonl(tmp_path / "t.jsonl", mcq_rows(4))), progress=False
    )
    assert all(len(s.loglikelihoods) == 4 and s.pred is not None for s in samples)
