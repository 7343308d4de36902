"""Cloze verse-completion set: deterministic, well-formed, readable by the MCQ loader."""

from __future__ import annotations

import json

import pytest

from lingualift.cli import main
from lingualift.data import Record
from lingualift.errors import LingualiftError
from lingualift.evaluation.cloze import build_cloze, cloze_items, score_cloze, write_cloze
from lingualift.evaluation.mcq import evaluate_mcq, load_mcq
from lingualift.testing import tiny_causal_lm


def _verses(n: int = 30, lang: str = "sw", book: int = 43) -> list[Record]:
    words = [
        "mwana",
        "baba",
        "mama",
        "nyumba",
        "mti",
        "maji",
        "njia",
        "mji",
        "jua",
        "mvua",
        "kitabu",
        "neno",
    ]
    out = []
    for i in range(n):
        length = 8 + i % 7
        text = " ".join(words[(i * 5 + j * 3) % len(words)] + str(i) for j in range(length))
        out.append(Record(id=f"{book}.1.{i + 1}", text=text, lang=lang, meta={"book": book}))
    return out


def test_rows_are_well_formed_and_deterministic():
    records = _verses()
    rows = build_cloze("swahili", n=12, seed=3, records=records)
    assert len(rows) == 12
    assert rows == build_cloze("sw", n=12, seed=3, records=records)
    assert rows != build_cloze("sw", n=12, seed=4, records=records)
    texts = {r.id: r.text for r in records}
    for row in rows:
        assert row["lang"] == "sw" and row["subject"] == "john"
        options = [row[f"option_{c}"] for c in "abcd"]
        assert len(set(options)) == 4
        true = row[f"option_{row['answer'].lower()}"]
        # The question's beginning plus the true ending is the verse itself.
        assert f"{row['prefix']} {true}" == texts[row["sample_id"].split(":")[1]]
        assert row["question"].startswith(row["prefix"])


def test_file_reads_unchanged_through_the_mcq_loader(tmp_path):
    rows = build_cloze("sw", n=6, seed=0, records=_verses())
    path = write_cloze(rows, tmp_path / "cloze.jsonl")
    items = load_mcq(path, "global-mmlu")
    assert [i.answer for i in items] == [i.answer for i in cloze_items(rows)]
    assert {i.subject_category for i in items} == {"verse-cloze"}
    model, tok = tiny_causal_lm("llama")
    assert len(evaluate_mcq(model, tok, items, progress=False)) == 6
    score = score_cloze(model, tok, rows, batch_size=8, progress=False)
    assert score.n == 6 and 0.0 <= score.acc_norm <= 1.0 and len(score.preds) == 6


def test_bad_input_fails_clearly(tmp_path):
    with pytest.raises(LingualiftError, match="min_units"):
        build_cloze("sw", n=5, records=_verses(3))
    with pytest.raises(LingualiftError, match="klingon|corpus|language"):
        build_cloze("klingon", n=5, books="43")
    with pytest.raises(LingualiftError, match="use .jsonl"):
        write_cloze(build_cloze("sw", n=2, records=_verses()), tmp_path / "x.txt")
    assert not (tmp_path / "x.txt").exists()


def test_cli_builds_from_the_embedded_corpus(tmp_path, capsys):
    out = tmp_path / "sw.jsonl"
    assert main(["cloze", "lang=sw", "books=57", "n=5", f"out={out}"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and all(r["subject"] == "philemon" for r in rows)
    assert "5 sw cloze questions" in capsys.readouterr().out
