"""lm-evaluation-harness's ``local-completions`` evaluates a served adapter like ``lingualift eval``.

A live server (a tiny Llama with a stored Swahili adapter) answers lm-eval's own client:
a loglikelihood task in Global-MMLU's format (token-id prompts in batches, ``echo``,
``logprobs``, one generated token) and a generate task (stop strings plus the EOS string
lm-eval adds). The per-option log-likelihoods equal ``lingualift eval``'s on the same adapter
(within 1e-4), so does the accuracy, and the generations equal lm-eval's own ``hf`` backend
with the adapter applied by PEFT. lm-eval's start-up, three evaluations and a live server take
about a minute on 2 busy cores, hence the integration mark.
"""

from __future__ import annotations

import json

import pytest
import yaml

from lingualift.adapters import AdapterStore
from lingualift.testing import save_tiny_causal_lm

from ..adapters.conftest import TINY, add_version
from ..evaluation.helpers import lm_eval_task, mcq_rows
from ..helpers import write_jsonl
from .conftest import live_server, serve_config

pytest.importorskip("lm_eval")

VOCAB = 260  # the byte tokenizer: 4 special tokens and 256 bytes

GENERATE_TASK = {
    "task": "tiny_gmmlu_gen",
    "dataset_path": "json",
    "test_split": "test",
    "output_type": "generate_until",
    "doc_to_text": "{{question.strip()}}\nA. {{option_a}}\nB. {{option_b}}\nAnswer:",
    "doc_to_target": "answer",
    "generation_kwargs": {"until": ["\n", "."], "max_gen_toks": 6, "do_sample": False},
    "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
    "metadata": {"version": 0.0},
}


def evaluate(model, model_args, tasks, folder, batch_size=4):
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=tasks,
        task_manager=TaskManager(include_path=str(folder)),
        log_samples=True,
        batch_size=batch_size,
        device="cpu",
    )


def by_sample(out, task):
    return {s["doc"]["sample_id"]: s for s in out["samples"][task]}


@pytest.mark.integration
def test_lm_eval_local_completions_scores_a_served_adapter_like_lingualift_eval(
    tmp_path, monkeypatch
):
    from lingualift.jobs.eval import EvalConfig, run_eval

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # As many ids as the tokenizer has tokens: lm-eval's hf backend (the generations'
    # reference) shrinks a larger vocabulary to the tokenizer's when it loads an adapter.
    model_dir = save_tiny_causal_lm(tmp_path / "model", "llama", **TINY, vocab_size=VOCAB)
    store = AdapterStore(tmp_path / "store")
    add_version(store, "sw", 1, vocab_size=VOCAB)
    data = write_jsonl(tmp_path / "sw_test.jsonl", mcq_rows(8, "sw"))
    tasks = lm_eval_task(tmp_path / "tasks", data)  # tiny_gmmlu: lingualift eval's prompt
    generate = {**GENERATE_TASK, "dataset_kwargs": {"data_files": {"test": str(data)}}}
    (tasks / "tiny_gmmlu_gen.yaml").write_text(yaml.safe_dump(generate, sort_keys=False))

    ours = run_eval(
        EvalConfig(
            task="global-mmlu",
            model=str(model_dir),
            adapters=str(store.path("sw")),
            data=str(data),
            log_samples=True,
            out_dir=str(tmp_path / "results"),
        ),
        print_table=False,
    )
    (task_name,) = [name for name in ours["results"] if name.endswith("_sw")]
    samples = [
        json.loads(line)
        for path in (tmp_path / "results").rglob(f"samples_{task_name}_*.jsonl")
        for line in path.read_text().splitlines()
    ]
    ours_ll = {s["doc"]["sample_id"]: [float(r[0][0]) for r in s["resps"]] for s in samples}
    assert len(ours_ll) == 8

    with live_server(serve_config(model_dir, store, tmp_path, langs=["sw"])) as (_, url):
        served = evaluate(
            "local-completions",
            f"base_url={url}/v1/completions,model=sw,tokenizer={model_dir},"
            "tokenizer_backend=huggingface,add_bos_token=True,max_retries=1",
            ["tiny_gmmlu", "tiny_gmmlu_gen"],
            tasks,
            batch_size=4,  # four token-id prompts per request
        )
    theirs_ll = {
        k: [r[0][0] for r in s["resps"]] for k, s in by_sample(served, "tiny_gmmlu").items()
    }
    assert set(theirs_ll) == set(ours_ll)
    for sample_id, lls in ours_ll.items():
        assert theirs_ll[sample_id] == pytest.approx(lls, abs=1e-4)
    assert served["results"]["tiny_gmmlu"]["acc,none"] == pytest.approx(
        ours["results"][task_name]["acc,none"]
    )

    reference = evaluate(
        "hf",
        f"pretrained={model_dir},peft={store.path('sw')},dtype=float32",
        ["tiny_gmmlu_gen"],
        tasks,
        batch_size=1,  # each prompt alone: no padding in the reference
    )
    generated = by_sample(served, "tiny_gmmlu_gen")
    expected = by_sample(reference, "tiny_gmmlu_gen")
    assert {k: s["resps"] for k, s in generated.items()} == {
        k: s["resps"] for k, s in expected.items()
    }
    assert any(s["resps"][0][0] for s in generated.values())  # something was generated
