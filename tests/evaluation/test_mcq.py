import pandas as pd
import pytest
import torch

from lingualift.errors import LingualiftError
from lingualift.evaluation.mcq import (
    build_cot_prompt,
    evaluate_mcq,
    extract_answer,
    load_mcq,
)
from lingualift.evaluation.results import format_table, mcq_results, read_results, write_results
from lingualift.evaluation.scoring import LoglikelihoodScorer
from lingualift.testing import tiny_causal_lm

from ..helpers import write_jsonl
from .helpers import mcq_rows


@pytest.fixture(scope="module")
def lm():
    return tiny_causal_lm("gemma3", hidden_size=32, num_layers=2)


def test_load_formats_and_filters(tmp_path):
    rows = mcq_rows(6, "sw") + mcq_rows(4, "yo")
    pd.DataFrame(rows).to_parquet(tmp_path / "gm.parquet")
    pd.DataFrame(rows).drop(columns="lang").to_csv(tmp_path / "sw.csv", index=False)
    items = load_mcq(tmp_path / "gm.parquet", langs=["swa"], limit=4)
    assert [it.lang for it in items] == ["sw"] * 4
    assert items[1].answer == 1 and items[1].subject == "world_religions"
    # A file without a language column takes the single requested language.
    assert {it.lang for it in load_mcq(tmp_path / "sw.csv", langs=["sw"])} == {"sw"}
    # A folder of <lang>_<split> files.
    write_jsonl(tmp_path / "dir" / "yo_test.jsonl", mcq_rows(3, "yo"))
    write_jsonl(tmp_path / "dir" / "yo_dev.jsonl", mcq_rows(2, "yo", prefix="d"))
    assert len(load_mcq(tmp_path / "dir", split="dev")) == 2


def test_mmlu_prox_ten_options_and_numbered_columns(tmp_path):
    rows = mcq_rows(4, "sw", n_options=10)
    for r in rows:
        for j, letter in enumerate("abcdefghij"):
            r[f"option_{j}"] = r.pop(f"option_{letter}")
        r["category"] = r.pop("subject")
    items = load_mcq(write_jsonl(tmp_path / "px.jsonl", rows), "mmlu-prox")
    assert len(items[0].options) == 10 and items[3].answer == 3


def test_bad_input_is_one_sentence(tmp_path):
    rows = mcq_rows(3)
    for r in rows:
        del r["option_c"], r["subject"]
    with pytest.raises(LingualiftError, match=r"missing column\(s\) option_c, subject"):
        load_mcq(write_jsonl(tmp_path / "a.jsonl", rows))
    rows = mcq_rows(3)
    rows[2]["answer"] = "E"
    with pytest.raises(LingualiftError, match="row 3: answer 'E' is outside the options A-D"):
        load_mcq(write_jsonl(tmp_path / "b.jsonl", rows))
    with pytest.raises(LingualiftError, match="No test questions in language 'yo'"):
        load_mcq(write_jsonl(tmp_path / "c.jsonl", mcq_rows(3)), langs=["sw", "yo"])


def test_context_above_limit(lm):
    model, tokenizer = lm
    scorer = LoglikelihoodScorer(model, tokenizer, max_length=32)
    with pytest.raises(LingualiftError, match="above the model's limit of 32 tokens"):
        scorer.loglikelihood([("x" * 40, " A")])


def test_scorer_matches_naive_forward(lm):
    model, tokenizer = lm
    pairs = [("Question: 2+2?\nAnswer:", " four"), ("Hi", " there you"), ("Hi", " A")]
    got = LoglikelihoodScorer(model, tokenizer, batch_size=2).loglikelihood(pairs)
    for (ctx, cont), (ll, _) in zip(pairs, got, strict=True):
        ids = tokenizer.encode(ctx + cont)
        n_ctx = len(tokenizer.encode(ctx))
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
        want = sum(lp[i - 1, ids[i]].item() for i in range(n_ctx, len(ids)))
        assert ll == pytest.approx(want, abs=1e-4)


def test_evaluate_fewshot_results_and_table(lm, tmp_path):
    model, tokenizer = lm
    items = load_mcq(write_jsonl(tmp_path / "t.jsonl", mcq_rows(6, "sw") + mcq_rows(4, "yo")))
    dev = load_mcq(write_jsonl(tmp_path / "d.jsonl", mcq_rows(4, "sw", prefix="d")))
    samples = evaluate_mcq(
        model, tokenizer, items, dev, num_fewshot=2, progress=False, keep_prompts=True
    )
    assert samples[0].prompt.count("Answer:") == 3
    assert all(len(s.loglikelihoods) == 4 for s in samples)
    res = mcq_results(
        "global-mmlu", samples, {"mode": "loglikelihood"}, {"model": "tiny"}, 2, True, items
    )
    acc = sum(s.correct for s in samples) / len(samples)
    assert res["results"]["global_mmlu_full"]["acc,none"] == pytest.approx(acc)
    assert res["results"]["global_mmlu_full_yo"]["sample_len"] == 4
    assert res["n-samples"]["global_mmlu_full_yo_astronomy"]["effective"] == 2
    assert res["group_subtasks"]["global_mmlu_full_sw_stem"] == ["global_mmlu_full_sw_astronomy"]
    path = write_results(res, tmp_path / "r.json")
    table = format_table(read_results(path))
    assert "global_mmlu_full_sw" in table and "astronomy" not in table


def test_cot_prompt_and_answer_patterns(lm, tmp_path):
    items = load_mcq(write_jsonl(tmp_path / "t.jsonl", mcq_rows(2, "sw")))
    assert "Jibu ni (X)" in build_cot_prompt(items[0])
    assert extract_answer("Hatua moja... Jibu ni (C).", "sw", 4) == 2
    assert extract_answer("答案是 (B)", "zh", 4) == 1
    assert extract_answer("The answer is D", "sw", 4) == 3
    assert extract_answer("no idea", "sw", 4) is None
    model, tokenizer = lm
    samples = evaluate_mcq(model, tokenizer, items, mode="cot", max_new_tokens=4, progress=False)
    assert all(s.generation is not None for s in samples)
