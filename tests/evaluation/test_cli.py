import json

import pytest

from lingualift.cli import main
from lingualift.evaluation.report import report
from lingualift.evaluation.results import latest_results

from ..helpers import write_jsonl
from .helpers import mcq_rows


@pytest.fixture()
def data(tmp_path):
    write_jsonl(tmp_path / "gm" / "sw_test.jsonl", mcq_rows(4, "sw"))
    write_jsonl(tmp_path / "gm" / "yo_test.jsonl", mcq_rows(3, "yo"))
    write_jsonl(tmp_path / "gm" / "sw_dev.jsonl", mcq_rows(2, "sw", prefix="d"))
    write_jsonl(tmp_path / "gm" / "yo_dev.jsonl", mcq_rows(2, "yo", prefix="d"))
    return tmp_path


def test_eval_mcq_then_report(tiny_model_dir, data, capsys):
    results_dir = data / "base"
    rc = main(
        [
            "eval",
            f"model={tiny_model_dir}",
            f"data={data / 'gm'}",
            "num_fewshot=1",
            f"out_dir={results_dir}",
            "log_samples=true",
        ]
    )
    assert rc == 0
    out = latest_results(results_dir)
    res = json.loads(out.read_text())
    assert res["results"]["global_mmlu_full_sw"]["sample_len"] == 4
    assert sum(n["effective"] for t, n in res["n-samples"].items() if "_yo_" in t) == 3
    yo_samples = [
        json.loads(line)
        for path in out.parent.glob("samples_global_mmlu_full_yo_*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert len(yo_samples) == 3 and "samples" not in res
    assert "global_mmlu_full_yo" in capsys.readouterr().out
    other = json.loads(out.read_text())
    other["results"]["global_mmlu_full_sw"]["acc,none"] = 1.0
    (data / "lift.json").write_text(json.dumps(other))
    # a results folder stands for its newest results file
    table = report(
        [f"base={results_dir}", f"lift={data / 'lift.json'}"], data / "cmp", task="global_mmlu"
    )
    assert "| sw |" in table and "1.0000" in table
    assert (data / "cmp.png").stat().st_size > 1000 and (data / "cmp.md").is_file()
    assert main(["report", str(out), "--out", str(data / "r2")]) == 0


def test_eval_perplexity_and_errors(tiny_model_dir, data, capsys):
    recs = data / "held.jsonl"
    write_jsonl(
        recs, [{"id": str(i), "text": f"maandishi {i} " * 5, "lang": "sw"} for i in range(3)]
    )
    out = data / "ppl"
    assert (
        main(
            [
                "eval",
                "task=perplexity",
                f"model={tiny_model_dir}",
                f"data={recs}",
                "max_length=32",
                f"out_dir={out}",
            ]
        )
        == 0
    )
    res = json.loads(latest_results(out).read_text())
    assert res["results"]["perplexity_sw"]["sample_len"] == 3
    assert res["n-samples"]["perplexity_sw"]["effective"] == 3
    assert (
        main(
            [
                "eval",
                "task=perplexity",
                f"model={tiny_model_dir}",
                f"data={recs}",
                "langs=yo",
                f"out_dir={data / 'x'}",
            ]
        )
        == 2
    )
    assert "No held-out text in language 'yo'" in capsys.readouterr().err
    assert not (data / "x").exists()
    assert (
        main(
            [
                "eval",
                f"model={tiny_model_dir}",
                f"data={data / 'gm'}",
                "langs=fr",
                f"out_dir={data / 'y'}",
            ]
        )
        == 2
    )
    assert "No test questions in language 'fr'" in capsys.readouterr().err
