"""``select`` reads its inputs through the one reader, with the one column mapping."""

import gzip
import json

import pytest

from lingualift.errors import LingualiftError
from lingualift.jobs.select import SelectConfig, read_inputs


def test_columns_apply_to_every_input_and_each_group_overrides(tmp_path):
    target = tmp_path / "usage.json"  # a JSON array, not JSON Lines
    target.write_text(json.dumps([{"body": f"Swali {i}", "qid": f"q{i}"} for i in range(3)]))
    pool = tmp_path / "pool.csv.gz"
    pool.write_bytes(gzip.compress(b"body,language\nUne phrase,fr\nEin Satz,de\n", mtime=0))
    config = SelectConfig(
        target=str(target), pool=str(pool), columns={"text": "body"},
        target_fields={"id": "qid", "default_lang": "swa"}, pool_fields={"lang": "language"},
    )  # fmt: skip
    got_target, training, got_pool = read_inputs(config)
    assert (got_target[0].id, got_target[0].text, got_target[0].lang) == ("q0", "Swali 0", "sw")
    assert [(r.text, r.lang) for r in got_pool] == [("Une phrase", "fr"), ("Ein Satz", "de")]
    assert training == []


def test_text_field_is_columns_text_and_keeps_the_fingerprint():
    short = SelectConfig(target="t", pool="p", text_field="body")
    long = SelectConfig(target="t", pool="p", columns={"text": "body"})
    assert (
        short.fields_settings()
        == long.fields_settings()
        == {
            "text_field": "body",
            "lang_field": "lang",
            "id_field": "id",
        }
    )
    with pytest.raises(LingualiftError, match="text_field='a' and columns.text='b' disagree"):
        SelectConfig(target="t", pool="p", text_field="a", columns={"text": "b"})


def test_a_missing_column_names_the_group_to_set(tmp_path):
    target = tmp_path / "usage.jsonl"
    target.write_text('{"question": "Swali"}\n')
    config = SelectConfig(target=str(target), pool="corpus:fr:43:5")
    with pytest.raises(LingualiftError, match=r"no 'text' column .* target_fields.text=<column>"):
        read_inputs(config)
