"""``lingualift eval`` writes what and where lm-eval's ``EvaluationTracker`` does; lm-eval finds it."""

import hashlib
import json
from pathlib import Path

import pytest

from lingualift.cli import main
from lingualift.errors import LingualiftError
from lingualift.evaluation.report import per_language
from lingualift.evaluation.results import latest_results, read_results

from ..helpers import write_jsonl
from .helpers import mcq_rows

lm_eval = pytest.importorskip("lm_eval")


def listing(folder: Path) -> list[str]:
    """Files under ``folder`` as a hub dataset repo lists them (``model/results_<date>.json``)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture()
def adapter(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    from lingualift.models import load_causal_lm

    model, _ = load_causal_lm(str(tiny_model_dir))
    folder = tmp_path / "adapters" / "sw-lora"
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(folder)
    return folder


def test_lm_eval_discovers_the_results_and_samples(tiny_model_dir, adapter, tmp_path):
    from lm_eval.result_schema import EvalResults, SampleResult
    from lm_eval.utils import (
        get_file_datetime,
        get_file_task_name,
        get_latest_filename,
        get_results_filenames,
        get_sample_results_filenames,
        hash_string,
        make_table,
        sanitize_model_name,
    )

    write_jsonl(tmp_path / "gm" / "sw_test.jsonl", mcq_rows(4, "sw"))
    write_jsonl(tmp_path / "gm" / "yo_test.jsonl", mcq_rows(2, "yo"))
    out = tmp_path / "results"
    argv = ["eval", f"model={tiny_model_dir}", f"adapters={adapter}", f"data={tmp_path / 'gm'}"]
    assert main([*argv, f"out_dir={out}", "log_samples=true"]) == 0
    files = listing(out)
    (first,) = get_results_filenames(files)
    model_folder = sanitize_model_name(str(adapter))  # lm-eval names the run after peft=
    assert Path(first).parent.name == model_folder
    results = json.loads((out / first).read_text())
    assert results["model_name"] == str(adapter)
    assert results["model_name_sanitized"] == model_folder
    weights = (adapter / "adapter_model.safetensors").read_bytes()
    assert results["config"]["peft_sha"] == hashlib.sha256(weights).hexdigest()
    assert set(EvalResults.__annotations__) - {"samples"} <= set(results)
    assert results["config"]["model_args"].startswith(f"pretrained={tiny_model_dir}")
    table = make_table(results)
    assert "global_mmlu_full_sw_astronomy" in table and "- global_mmlu_full_sw" in table
    assert "global_mmlu_full_yo" in make_table(results, "groups")

    samples = get_sample_results_filenames(files)
    assert {get_file_task_name(Path(f).name) for f in samples} == set(results["configs"])
    stamp = get_file_datetime(Path(first).name).removesuffix(".json")
    for name in samples:  # one run: the samples carry the results file's date
        assert Path(name).parent.name == model_folder
        assert get_file_datetime(Path(name).name) == stamp
        task = get_file_task_name(Path(name).name)
        records = [json.loads(line) for line in (out / name).read_text().splitlines()]
        assert len(records) == results["n-samples"][task]["effective"]
        assert all(set(SampleResult.__annotations__) <= set(r) for r in records)
        assert records[0]["arguments"]["gen_args_0"]["arg_1"] == " A"
        joined = "".join(r["doc_hash"] + r["prompt_hash"] + r["target_hash"] for r in records)
        assert results["task_hashes"][task] == hash_string(joined)
    assert per_language(results) == {
        "sw": results["results"]["global_mmlu_full_sw"]["acc,none"],
        "yo": results["results"]["global_mmlu_full_yo"]["acc,none"],
    }

    assert main([*argv, f"out_dir={out}"]) == 0  # a second run lands beside the first
    runs = get_results_filenames(listing(out))
    assert len(runs) == 2 and first in runs
    newest = get_latest_filename(runs)
    assert newest != first
    assert latest_results(out) == latest_results(out / model_folder) == out / newest
    assert read_results(out)["date"] == json.loads((out / newest).read_text())["date"]


def test_lm_eval_builds_its_results_card_from_lingualift_files(
    tiny_model_dir, tmp_path, monkeypatch
):
    """``EvaluationTracker.recreate_metadata_card`` (lm-eval's discovery over a results repo) run
    over lingualift's files: it must pick lingualift's results file as the latest run and point
    each task's 'latest' split at lingualift's sample files."""
    import huggingface_hub
    from lm_eval.loggers import EvaluationTracker, evaluation_tracker

    write_jsonl(tmp_path / "gm" / "sw_test.jsonl", mcq_rows(2, "sw"))
    out = tmp_path / "results"
    argv = ["eval", f"model={tiny_model_dir}", f"data={tmp_path / 'gm'}", f"out_dir={out}"]
    assert main([*argv, "log_samples=true"]) == 0

    class Repo:  # the hub repo lm-eval would list: lingualift's output folder
        def list_repo_files(self, repo_id, repo_type):
            return listing(out)

    loaded, cards = [], []
    real_load = evaluation_tracker.load_dataset

    def load(kind, data_files, split):
        loaded.append(data_files)
        return real_load(kind, data_files=data_files, split=split)

    monkeypatch.setattr(evaluation_tracker, "load_dataset", load)
    monkeypatch.setattr(
        huggingface_hub, "hf_hub_url", lambda repo_id, filename, **_: str(out / filename)
    )
    monkeypatch.setattr(
        huggingface_hub.DatasetCard, "push_to_hub", lambda card, *a, **k: cards.append(card)
    )
    tracker = EvaluationTracker()
    tracker.api = Repo()
    tracker.recreate_metadata_card()
    (results_file,) = [f for f in listing(out) if "/results_" in f]
    assert loaded == [str(out / results_file)]  # the run lm-eval found as the latest
    (card,) = cards
    results = json.loads((out / results_file).read_text())
    assert f'"acc,none": {results["results"]["global_mmlu_full_sw"]["acc,none"]}' in card.content
    model = Path(results_file).parent.name
    configs = {c["config_name"]: c["data_files"] for c in card.data.to_dict()["configs"]}
    assert set(configs) == {f"{model}__{task}" for task in results["configs"]}
    for task in results["configs"]:
        latest = [e["path"] for e in configs[f"{model}__{task}"] if e["split"] == "latest"]
        (sample_file,) = (out / model).glob(f"samples_{task}_*.jsonl")
        assert latest == [[f"**/{sample_file.name}"]]


def test_lm_eval_backend_lands_in_the_same_layout(tiny_model_dir, adapter, tmp_path, monkeypatch):
    from lm_eval.utils import get_results_filenames, make_table, sanitize_model_name

    from .helpers import lm_eval_task

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data = write_jsonl(tmp_path / "test.jsonl", mcq_rows(2, "sw"))
    tasks = lm_eval_task(tmp_path / "tasks", data, name="tiny_gmmlu_sw")
    out = tmp_path / "results"
    argv = ["eval", "backend=lm-eval", f"model={tiny_model_dir}", f"adapters={adapter}"]
    argv += ["lm_eval_tasks=tiny_gmmlu_sw", f"lm_eval_include_path={tasks}", f"out_dir={out}"]
    assert main([*argv, "log_samples=true", "device=cpu"]) == 0
    (found,) = get_results_filenames(listing(out))
    assert Path(found).parent.name == sanitize_model_name(str(adapter))
    results = json.loads((out / found).read_text())
    assert results["model_name"] == str(adapter) and "samples" not in results
    weights = (adapter / "adapter_model.safetensors").read_bytes()
    assert results["config"]["peft_sha"] == hashlib.sha256(weights).hexdigest()
    assert results["task_hashes"]["tiny_gmmlu_sw"]
    (samples,) = (out / found).parent.glob("samples_tiny_gmmlu_sw_*.jsonl")
    assert len(samples.read_text().splitlines()) == 2
    assert "tiny_gmmlu_sw" in make_table(results)


def test_a_file_as_output_and_ambiguous_folders_are_refused(tmp_path):
    from lingualift.jobs.eval import EvalConfig

    with pytest.raises(
        LingualiftError, match=r"out_dir='r/base.json' names a file, .* out_dir=r/base\.$"
    ):
        EvalConfig(out_dir="r/base.json")
    for model in ("a", "b"):
        (tmp_path / model).mkdir()
        (tmp_path / model / "results_2026-01-01T00-00-00.000001.json").write_text('{"results": {}}')
    with pytest.raises(LingualiftError, match=r"holds results of several models \(a, b\)"):
        latest_results(tmp_path)
    assert read_results(tmp_path / "a") == {"results": {}}
    (tmp_path / "empty").mkdir()
    with pytest.raises(LingualiftError, match="holds no results_<date>.json"):
        read_results(tmp_path / "empty")


def test_report_still_reads_the_earlier_layout():
    old = {
        "results": {
            "global_mmlu": {"alias": "global_mmlu", "acc,none": 0.5, "n": 6},
            "global_mmlu_sw_astronomy": {"alias": "  - astronomy", "acc,none": 1.0, "n": 2},
            "global_mmlu_sw": {"alias": " - global_mmlu_sw", "acc,none": 0.25, "n": 4},
        }
    }
    assert per_language(old) == {"sw": 0.25}
