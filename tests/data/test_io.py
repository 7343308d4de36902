import json

import pytest

from lingualift.data import FieldMap, Record, read_records, write_records
from lingualift.errors import LingualiftError

RECORDS = [
    Record(id="a", text="Habari ya asubuhi", lang="sw", source="t", meta={"k": 1}),
    Record(id="b", text="নমস্কার", lang="bn", source="t", meta={}),
]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv", ".parquet"])
def test_round_trip_every_format(tmp_path, suffix):
    path = write_records(RECORDS, tmp_path / f"data{suffix}")
    assert read_records(path) == RECORDS


def test_field_mapping_default_language_and_meta(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"question": "Swali la kwanza", "subject": "math"},
                {"question": "Second", "language": "English"},
            ]
        )
        + "\n"
    )
    records = read_records(
        path, FieldMap(text="question", id=None, lang="language", default_lang="swa")
    )
    assert [r.lang for r in records] == ["sw", "en"]
    assert [r.id for r in records] == ["1", "2"]
    assert records[0].meta == {"subject": "math"}


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n\n{"text": broken}\n')
    with pytest.raises(LingualiftError, match=r"bad.jsonl:3: malformed JSON"):
        read_records(path)


def test_unknown_language_names_the_line(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("id,text,lang\n1,hello,en\n2,xyz,zz\n")
    with pytest.raises(LingualiftError, match=r"l.csv:3: Unknown language 'zz'"):
        read_records(path)


def test_missing_text_field_and_empty_and_missing_file(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"body": "x"}\n')
    with pytest.raises(
        LingualiftError,
        match=r"t.jsonl:1: no 'text' column in this JSON Lines row .* columns.text=",
    ):
        read_records(path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(LingualiftError, match="holds no records"):
        read_records(empty)
    with pytest.raises(LingualiftError, match="does not exist"):
        read_records(tmp_path / "nope.jsonl")


def test_duplicate_ids_are_rejected(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n')
    with pytest.raises(LingualiftError, match="d.jsonl:2: duplicate id"):
        read_records(path)


def test_unsupported_suffix(tmp_path):
    with pytest.raises(LingualiftError, match="Cannot write"):
        write_records(RECORDS, tmp_path / "x.xml")


def test_rows_without_text_are_counted_not_silently_dropped(tmp_path, caplog):
    import logging

    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"text": "habari"}\n{"text": null}\n{"text": "  "}\n{"other": 1, "text": "jambo"}\n'
    )
    with caplog.at_level(logging.WARNING, logger="lingualift.data.io"):
        records = read_records(path)
    assert [r.text for r in records] == ["habari", "jambo"]
    assert "skipped 2 rows whose 'text' is empty or missing (first: " in caplog.text
    assert f"{path}:2" in caplog.text


def test_long_csv_fields_and_utf8_errors_name_the_line(tmp_path):
    long = "x" * 200_000
    path = tmp_path / "long.csv"
    path.write_text(f"id,text\n1,{long}\n", encoding="utf-8")
    assert read_records(path)[0].text == long
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,text\n1,ok\n2,caf\xe9\n")
    with pytest.raises(LingualiftError, match=r"bad.csv:3: byte 5 .* is not UTF-8"):
        read_records(bad)


def test_parquet_keeps_scalar_meta_as_typed_columns(tmp_path):
    import pyarrow.parquet as pq

    records = [
        Record(id=str(i), text=f"t{i}", lang="sw", source="s", meta={"cluster": i % 2, "score": 0.5 + i, "reason": "gap", "tags": ["x"], "extra": i} if i else {"cluster": 0, "score": 1, "reason": "gap", "tags": []})
        for i in range(3)
    ]  # fmt: skip
    path = write_records(records, tmp_path / "s.parquet")
    types = {f.name: str(f.type) for f in pq.read_schema(path)}
    assert (
        types["cluster"] == "int64" and types["score"] == "double" and types["reason"] == "string"
    )
    assert "tags" not in types and "extra" not in types  # nested, or not in every record: JSON
    assert read_records(path) == [
        Record(**{**r.__dict__, "meta": {**r.meta, "score": float(r.meta["score"])}})
        for r in records
    ]
    datasets = pytest.importorskip("datasets")
    dataset = datasets.Dataset.from_parquet(str(path)).filter(lambda row: row["cluster"] == 1)
    assert dataset["id"] == ["1"]
    duckdb = pytest.importorskip("duckdb")
    assert duckdb.sql(f"select count(*) from '{path}' where cluster = 0").fetchone() == (2,)


def test_parquet_written_with_meta_as_json_still_reads(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "old.parquet"
    row = {"id": "a", "text": "x", "lang": "sw", "source": "s", "meta": json.dumps({"cluster": 2})}
    pq.write_table(pa.Table.from_pylist([row]), path)
    assert read_records(path)[0].meta == {"cluster": 2}
