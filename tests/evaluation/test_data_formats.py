"""Evaluation data goes through the one reader: compressed files, JSON arrays, saved datasets."""

import gzip
import json

import pytest

from lingualift.evaluation.mcq import load_mcq
from lingualift.jobs.eval import EvalConfig

from .helpers import mcq_rows


def test_questions_in_compressed_files_json_arrays_and_saved_datasets(tmp_path):
    import pyarrow as pa

    folder = tmp_path / "gm"
    folder.mkdir()
    with pa.output_stream(str(folder / "sw_test.jsonl.zst"), compression="zstd") as out:
        out.write("".join(json.dumps(r) + "\n" for r in mcq_rows(3, "sw")).encode())
    (folder / "yo_test.json").write_text(json.dumps(mcq_rows(2, "yo")))
    items = load_mcq(folder, "global-mmlu", split="test")
    assert sorted({(i.lang, sum(j.lang == i.lang for j in items)) for i in items}) == [
        ("sw", 3),
        ("yo", 2),
    ]
    datasets = pytest.importorskip("datasets")
    saved = tmp_path / "saved"
    datasets.Dataset.from_list(mcq_rows(4, "sw")).save_to_disk(str(saved))
    assert len(load_mcq(saved, "global-mmlu")) == 4


def test_perplexity_data_takes_the_column_mapping(tiny_model_dir, tmp_path):
    from lingualift.cli import main
    from lingualift.evaluation.results import read_results

    assert EvalConfig(task="perplexity", text_field="body").columns.text == "body"
    held = tmp_path / "held.csv.gz"
    held.write_bytes(gzip.compress(b"body,language\nMaandishi ya kwanza,sw\nHabari,sw\n"))
    out = tmp_path / "ppl"
    argv = ["eval", "task=perplexity", f"model={tiny_model_dir}", f"data={held}"]
    argv += ["columns.text=body", "columns.lang=language", "max_length=16", f"out_dir={out}"]
    assert main(argv) == 0
    assert read_results(out)["results"]["perplexity_sw"]["sample_len"] == 2
