"""train's data goes through the one reader with the one column mapping; its old *_field keys stay
as short forms of that mapping, with the fingerprints they always had."""

from __future__ import annotations

import csv
import json

import pytest

from lingualift.config import load_config, settings_of
from lingualift.errors import LingualiftError
from lingualift.workflows.training import TrainConfig, read_training_data


def test_short_forms_and_the_mapping_are_one_setting():
    old = TrainConfig(data="x.jsonl", text_field="body")
    new = TrainConfig(data="x.jsonl", columns={"text": "body"})
    assert old.columns.text == new.columns.text == "body" and new.text_field == "body"
    assert settings_of(old) == settings_of(new)  # earlier runs are found again
    assert settings_of(TrainConfig(data="x.jsonl"))["text_field"] == "text"
    both = TrainConfig(data="x.jsonl", columns={"prompt": "q"}, prompt_field="q")
    assert both.columns.prompt == "q"
    with pytest.raises(LingualiftError, match="completion_field='a' and columns.completion='b'"):
        TrainConfig(data="x.jsonl", columns={"completion": "b"}, completion_field="a")
    on_the_command_line = load_config(TrainConfig, None, ["data=x.csv", "columns.text=body"])
    assert on_the_command_line.text_field == "body"


def test_every_kind_of_row_is_read_through_the_mapping(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    plain = tmp_path / "plain.csv"
    with plain.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uid", "body", "text", "language"])
        writer.writerows([[f"u{i}", f"habari {i}", "not this", "sw"] for i in range(3)])
    config = TrainConfig(data=str(plain), columns={"text": "body", "id": "uid", "lang": "language"})
    data = read_training_data(config)
    assert [(e.id, e.text) for e in data.examples] == [(f"u{i}", f"habari {i}") for i in range(3)]
    assert data.summaries[0].languages == {"sw": 3}

    pairs = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist([{"q": "2+2?", "a": "4"}, {"q": "3+3?", "a": "6"}]), pairs)
    data = read_training_data(
        TrainConfig(data=str(pairs), prompt_field="q", columns={"completion": "a"})
    )
    assert [(e.kind, e.prompt, e.completion) for e in data.examples] == [
        ("prompt_completion", "2+2?", "4"), ("prompt_completion", "3+3?", "6"),
    ]  # fmt: skip

    chats = tmp_path / "chats.json"
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "jambo"}]
    chats.write_text(json.dumps([{"turns": turns}]))  # a JSON array
    data = read_training_data(
        TrainConfig(data=str(chats), columns={"messages": "turns", "default_lang": "sw"})
    )
    assert data.examples[0].kind == "chat" and data.examples[0].messages == turns
    assert data.summaries[0].languages == {"sw": 1}


def test_a_mapped_column_that_is_missing_is_one_sentence(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "habari"}) + "\n")
    with pytest.raises(LingualiftError, match=r"d.jsonl:1 has none of the columns 'body'"):
        read_training_data(TrainConfig(data=str(data), text_field="body"))
    with pytest.raises(LingualiftError, match=r"d.jsonl:1: no 'body' column .*columns.text"):
        read_training_data(TrainConfig(data=str(data), text_field="body", data_format="text"))
