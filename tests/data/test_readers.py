"""The one reader: every format, compression, folder and ``hf:`` source, column mapping, errors."""

import bz2
import gzip
import json

import pytest

from lingualift.data import (
    Columns,
    Record,
    describe_source,
    iter_rows,
    read_records,
    shorthand_columns,
    write_records,
)
from lingualift.data.readers import parse_hf_spec
from lingualift.data.sources import read_source
from lingualift.errors import LingualiftError

RECORDS = [
    Record(id="a", text="Habari ya asubuhi", lang="sw", source="t", meta={"k": 1}),
    Record(id="b", text="নমস্কার", lang="bn", source="t", meta={}),
]
ROWS = [
    {"qid": "q1", "body": "Swali la kwanza", "language": "sw", "subject": "math"},
    {"qid": "q2", "body": "Second question", "language": "en", "subject": "law"},
]
MAPPING = Columns(text="body", id="qid", lang="language")


@pytest.mark.parametrize(
    "name",
    [
        "d.jsonl", "d.json", "d.ndjson", "d.csv", "d.tsv", "d.parquet",
        "d.jsonl.gz", "d.json.zst", "d.csv.zst", "d.tsv.bz2", "d.parquet.gz", "d.jsonl.lz4",
    ],
)  # fmt: skip
def test_every_format_and_compression_round_trips(tmp_path, name):
    path = write_records(RECORDS, tmp_path / name)
    assert read_records(path) == RECORDS


def test_files_compressed_by_other_tools_are_read(tmp_path):
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS).encode()
    (tmp_path / "q.jsonl.gz").write_bytes(gzip.compress(lines))
    (tmp_path / "q.jsonl.bz2").write_bytes(bz2.compress(lines))
    for name in ("q.jsonl.gz", "q.jsonl.bz2"):
        records = read_records(tmp_path / name, MAPPING)
        assert [(r.id, r.text, r.lang) for r in records] == [
            ("q1", "Swali la kwanza", "sw"),
            ("q2", "Second question", "en"),
        ]
    assert describe_source(tmp_path / "q.jsonl.gz") == "gzip-compressed JSON Lines"


def test_a_json_array_is_read_as_records(tmp_path):
    path = tmp_path / "q.json"
    path.write_text(json.dumps(ROWS, indent=2, ensure_ascii=False))
    records = read_records(path, MAPPING)
    assert [r.id for r in records] == ["q1", "q2"] and records[0].meta == {"subject": "math"}
    # the same array in a .jsonl file (first byte '['), and pretty-printed JSON Lines objects fail
    # by what they are, not by "line 1"
    (tmp_path / "a.jsonl").write_text(json.dumps(ROWS))
    assert len(read_records(tmp_path / "a.jsonl", MAPPING)) == 2


def test_json_errors_say_what_was_found_and_what_was_expected(tmp_path):
    items = tmp_path / "items.json"
    items.write_text(json.dumps([{"text": "a"}, "b"]))
    with pytest.raises(LingualiftError, match=r"items.json:2: item 2 of the JSON array is a str"):
        read_records(items)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"text": "a"},\n  {"text": }\n]')
    with pytest.raises(LingualiftError, match=r"broken.json:3: malformed JSON .* one JSON array"):
        read_records(broken)
    document = tmp_path / "doc.json"
    document.write_text(json.dumps({"version": 1, "data": [{"text": "a"}]}, indent=2))
    with pytest.raises(
        LingualiftError,
        match=r"doc.json holds one JSON object \(keys: version, data\), not records; expected "
        r"JSON Lines .* or a JSON array of objects; .* jq '.data'",
    ):
        read_records(document)
    document.write_text(json.dumps({"version": 1, "data": [{"text": "a"}]}))  # on one line
    with pytest.raises(LingualiftError, match=r"doc.json holds one JSON object"):
        read_records(document)
    scalar = tmp_path / "s.jsonl"
    scalar.write_text('{"text": "a"}\n"just text"\n')
    with pytest.raises(LingualiftError, match=r"s.jsonl:2: a JSON str where read as JSON Lines"):
        read_records(scalar)


def test_names_that_contradict_the_bytes_are_refused_by_what_they_are(tmp_path):
    fake_gz = tmp_path / "q.jsonl.gz"
    fake_gz.write_text('{"text": "a"}\n')
    with pytest.raises(
        LingualiftError,
        match=r"q.jsonl.gz is named as gzip-compressed JSON Lines but its bytes are JSON, "
        "not gzip data",
    ):
        read_records(fake_gz)
    hidden_gz = tmp_path / "h.jsonl"
    hidden_gz.write_bytes(gzip.compress(b'{"text": "a"}\n'))
    with pytest.raises(LingualiftError, match=r"bytes are gzip data; name it with .gz"):
        read_records(hidden_gz)
    fake_parquet = tmp_path / "p.parquet"
    fake_parquet.write_text("id,text\n1,a\n")
    with pytest.raises(LingualiftError, match=r"named as Parquet but its bytes are text"):
        read_records(fake_parquet)
    truncated = tmp_path / "t.jsonl.zst"
    good = write_records(RECORDS * 1, tmp_path / "good.jsonl.zst").read_bytes()
    truncated.write_bytes(good[:-6])
    with pytest.raises(LingualiftError, match=r"could not be decompressed as zstd .* truncated"):
        read_records(truncated)
    unknown = tmp_path / "notes.txt"
    unknown.write_text("hello\n")
    with pytest.raises(LingualiftError, match=r"Cannot tell the format of .*notes.txt \(.txt\)"):
        read_records(unknown)


def test_a_folder_of_shards_is_read_in_path_order(tmp_path):
    folder = tmp_path / "pool"
    write_records(RECORDS[:1], folder / "part-0.jsonl.gz")
    write_records(RECORDS[1:], folder / "sub" / "part-1.parquet")
    (folder / "README.md").write_text("not data")
    (folder / ".cache").mkdir()
    write_records(RECORDS, folder / ".cache" / "stale.jsonl")
    wheres = [where for where, _, _ in iter_rows(folder)]
    assert wheres == [str(folder / "part-0.jsonl.gz"), str(folder / "sub" / "part-1.parquet")]
    assert read_records(folder) == RECORDS
    assert describe_source(folder) == "a folder of Parquet and gzip-compressed JSON Lines files"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LingualiftError, match="is a folder with no data files"):
        read_records(empty)


def test_hf_specs_parse_both_split_forms():
    assert parse_hf_spec("hf:org/name") == parse_hf_spec("org/name")
    spec = parse_hf_spec("hf:CohereForAI/Global-MMLU:sw@test")
    assert (spec.name, spec.config, spec.split) == ("CohereForAI/Global-MMLU", "sw", "test")
    assert parse_hf_spec("hf:x:sw:dev") == parse_hf_spec("hf:x:sw@dev")
    assert parse_hf_spec("hf:x@dev").config is None and parse_hf_spec("hf:x@dev").split == "dev"
    with pytest.raises(LingualiftError, match="must look like hf:<name>"):
        parse_hf_spec("hf:x:a:b:c")
    with pytest.raises(LingualiftError, match="must look like hf:<name>"):
        parse_hf_spec("hf:x:a:b@c")


@pytest.fixture()
def hf_offline(monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # read at import time
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return datasets


def test_saved_hugging_face_datasets_read_with_or_without_hf(tmp_path, hf_offline):
    datasets = hf_offline
    single = tmp_path / "saved"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(single))
    for source in (single, f"hf:{single}"):
        assert [r.id for r in read_records(source, MAPPING)] == ["q1", "q2"]
    assert describe_source(single) == "a saved Hugging Face dataset"
    splits = tmp_path / "splits"
    datasets.DatasetDict(
        {"dev": datasets.Dataset.from_list(ROWS[:1]), "test": datasets.Dataset.from_list(ROWS)}
    ).save_to_disk(str(splits))
    assert len(read_records(f"hf:{splits}@dev", MAPPING)) == 1
    assert len(read_records(f"hf:{splits}::test", MAPPING)) == 2
    with pytest.raises(LingualiftError, match=r"has several splits \(dev, test\); name one"):
        read_records(splits, MAPPING)
    with pytest.raises(LingualiftError, match=r"has no split 'train' \(it has: dev, test\)"):
        read_records(f"hf:{splits}@train", MAPPING)


def test_hf_folder_of_shards_needs_no_config(tmp_path, hf_offline):
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards = tmp_path / "shards" / "data"
    shards.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(ROWS), shards / "train-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(ROWS[:1]), shards / "train-00001-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(ROWS[1:]), shards / "test-00000-of-00001.parquet")
    folder = tmp_path / "shards"
    train = read_records(f"hf:{folder}", Columns(text="body", id=None, lang="language"))
    assert len(train) == 3  # the train split, without ':default'
    test = read_records(f"hf:{folder}@test", MAPPING)
    assert [r.id for r in test] == ["q2"]
    assert len(read_records(f"hf:{folder}:default", Columns(text="body", id=None))) == 3
    with pytest.raises(LingualiftError, match=r"Could not load hf:no/such-dataset-here \("):
        read_records("hf:no/such-dataset-here")


def test_column_mapping_renames_for_every_reader(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("qid,body,language,text\nq1,Habari,sw,ignored\n")
    ((where, line, row),) = iter_rows(path, MAPPING)
    assert (where, line) == (str(path), 2)
    assert row == {"id": "q1", "text": "Habari", "lang": "sw"}  # a mapped column wins its name
    no_ids = Columns(id=None)
    assert no_ids.apply({"id": "x", "text": "t"}) == {"text": "t"}
    assert Columns().apply({"id": "x"}) == {"id": "x"}
    assert Columns(ts="time").apply({"time": 3, "text": "t"}) == {"ts": 3, "text": "t"}


def test_missing_column_names_the_format_and_the_option(tmp_path):
    path = tmp_path / "q.csv.gz"
    path.write_bytes(gzip.compress(b"qid,body\n1,Habari\n"))
    with pytest.raises(
        LingualiftError,
        match=r"q.csv.gz:2: no 'text' column in this gzip-compressed CSV row \(columns: qid, "
        r"body\); map the text column with columns.text=<column> \(or text_field=<column>\)",
    ):
        read_records(path)
    with pytest.raises(LingualiftError, match=r"with pool_fields.text=<column>\.$"):
        read_source(path, role="pool", option="pool_fields")


def test_text_field_is_the_short_form_of_columns_text():
    assert shorthand_columns(None, "body").text == "body"
    assert shorthand_columns({"lang": "language"}, "body") == Columns(text="body", lang="language")
    assert shorthand_columns(Columns(text="body"), "body").text == "body"
    with pytest.raises(LingualiftError, match="text_field='a' and columns.text='b' disagree"):
        shorthand_columns(Columns(text="b"), "a")
    with pytest.raises(LingualiftError, match="Unknown key 'txt' in columns"):
        shorthand_columns({"txt": "a"}, None)


def test_bad_lines_can_be_counted_and_skipped(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"text": "a"}\n{broken\n[1]\n{"text": "b"}\n')
    seen = []
    rows = list(iter_rows(path, on_error=lambda where, line, reason: seen.append((line, reason))))
    assert [line for _, line, _ in rows] == [1, 4]
    assert [line for line, _ in seen] == [2, 3] and "malformed JSON" in seen[0][1]
    with pytest.raises(LingualiftError, match=r"log.jsonl:2: malformed JSON .* fix or remove"):
        list(iter_rows(path))


def test_rows_for_the_monitor_parse_as_queries(tmp_path):
    """What the monitor's log reader gets for a file that is not a traffic log: mapped rows
    that its own ``parse_row`` turns into queries, bad lines reported instead of raised."""
    from lingualift.continual.logs import Problem, Query, parse_row

    path = tmp_path / "usage.csv.gz"
    path.write_bytes(
        gzip.compress(
            b"query,language,time\nHabari ya leo,sw,2026-01-01T00:00:00\n"
            b"Bonjour,fr,2026-01-01T00:00:00,extra\nJambo,sw,2026-01-01T00:00:01\n"
        )
    )
    columns = Columns(text="query", lang="language", ts="time", id=None)
    out: list = []
    for where, line, row in iter_rows(
        path, columns, on_error=lambda w, n, reason: out.append(Problem(w, n, reason))
    ):
        out.append(parse_row(row, where, line))
    assert [type(x) for x in out] == [Query, Problem, Query]
    assert (out[0].text, out[0].lang, out[0].ts) == ("Habari ya leo", "sw", 1767225600.0)
    assert out[1].line == 3 and "more fields than the header" in out[1].reason
    assert (out[2].id, out[2].where) == (f"{path}:4", f"{path}:4")
