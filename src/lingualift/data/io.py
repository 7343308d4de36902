"""Read and write :class:`Record` datasets: JSONL, CSV/TSV, Parquet, Hugging Face datasets.

Sources are named by path (the suffix picks the format) or as
``hf:<dataset>[:<config>][@<split>]`` for the Hugging Face hub or a local
dataset folder. Columns map onto records with :class:`FieldMap`; columns that
are not mapped are kept in ``Record.meta``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_path
from lingualift.data.records import Record
from lingualift.errors import LingualiftError
from lingualift.languages import normalize_language
from lingualift.textio import iter_lines, read_text

logger = logging.getLogger(__name__)

FORMATS = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}


@dataclasses.dataclass
class FieldMap:
    """Which source columns become the record's id, text and language."""

    text: str = "text"
    """Column holding the text."""
    id: str | None = "id"
    """Column holding a unique id; when absent the row number is used."""
    lang: str | None = "lang"
    """Column holding the language code; when absent, ``default_lang`` applies."""
    default_lang: str | None = None
    """Language of every row that has no language column (or an empty one)."""


def _rows_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for line_no, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LingualiftError(
                f"{path}:{line_no}: malformed JSON ({exc.msg}); fix or remove that line."
            ) from None
        if not isinstance(row, dict):
            raise LingualiftError(f"{path}:{line_no}: expected a JSON object per line.")
        yield line_no, row


# Long documents are normal input: lift the csv module's 128 KiB limit per field.
csv.field_size_limit(2**31 - 1)


def _rows_csv(path: Path, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if None in row:
                raise LingualiftError(
                    f"{path}:{reader.line_num}: more fields than the header has; "
                    "quote fields that contain the delimiter."
                )
            yield reader.line_num, row
    except csv.Error as exc:
        raise LingualiftError(f"{path}:{reader.line_num}: malformed CSV ({exc}).") from None


def _rows_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise LingualiftError(f"{path} is not a readable Parquet file ({exc}).") from None
    yield from enumerate(table.to_pylist(), start=1)


def _rows_hf(spec: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        import datasets
    except ImportError:
        raise LingualiftError(
            "Reading 'hf:' sources needs the datasets package; pip install 'lingualift[hf]'."
        ) from None
    name, _, split = spec.partition("@")
    name, _, config = name.partition(":")
    try:
        if Path(name).is_dir() and not config:
            dataset = datasets.load_from_disk(name)
            if isinstance(dataset, datasets.DatasetDict):
                dataset = dataset[split or next(iter(dataset))]
        else:
            dataset = datasets.load_dataset(name, config or None, split=split or "train")
    except Exception as exc:
        raise LingualiftError(f"Could not load dataset hf:{spec} ({exc}).") from None
    yield from enumerate(dataset, start=1)


def iter_rows(source: str | Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Yield ``(source name, line or row number, row)`` from any supported source."""
    spec = str(source)
    if spec.startswith("hf:"):
        for row_no, row in _rows_hf(spec[3:]):
            yield spec, row_no, row
        return
    path = Path(spec)
    if path.is_dir():
        raise LingualiftError(
            f"{path} is a folder; give a data file inside it (.jsonl, .csv, .tsv or .parquet) "
            "or hf:<folder> for a saved Hugging Face dataset."
        )
    if not path.is_file():
        raise LingualiftError(f"Input file {path} does not exist; check the path.")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise LingualiftError(
            f"Cannot read {path}: use one of {', '.join(FORMATS)} or an 'hf:' dataset."
        )
    if fmt == "jsonl":
        rows = _rows_jsonl(path)
    elif fmt == "parquet":
        rows = _rows_parquet(path)
    else:
        rows = _rows_csv(path, "\t" if fmt == "tsv" else ",")
    for row_no, row in rows:
        yield str(path), row_no, row


def read_records(
    source: str | Path, fields: FieldMap | None = None, allow_empty: bool = False
) -> list[Record]:
    """Read a dataset into records, naming the file and line of any bad row."""
    fields = fields or FieldMap()
    default_lang = normalize_language(fields.default_lang) if fields.default_lang else None
    records: list[Record] = []
    seen_ids: set[str] = set()
    skipped: list[str] = []
    name = str(source)
    for name, row_no, row in iter_rows(source):
        where = f"{name}:{row_no}"
        text = row.get(fields.text)
        if fields.text not in row:
            raise LingualiftError(
                f"{where}: no {fields.text!r} field (fields: {', '.join(map(str, row))}); "
                "map the text column with text_field=<name>."
            )
        if not isinstance(text, str) or not text.strip():
            skipped.append(where)
            continue
        raw_lang = row.get(fields.lang) if fields.lang else None
        try:
            lang = normalize_language(str(raw_lang)) if raw_lang else default_lang
        except LingualiftError as exc:
            raise LingualiftError(f"{where}: {exc}") from None
        raw_id = row.get(fields.id) if fields.id else None
        record_id = str(raw_id) if raw_id not in (None, "") else str(row_no)
        if record_id in seen_ids:
            raise LingualiftError(f"{where}: duplicate id {record_id!r}; ids must be unique.")
        seen_ids.add(record_id)
        used = {fields.text, fields.id, fields.lang, "meta", "source"}
        meta = _parse_meta(row.get("meta"), where)
        meta.update({k: v for k, v in row.items() if k not in used})
        records.append(
            Record(id=record_id, text=text, lang=lang, source=row.get("source") or name, meta=meta)
        )
    warn_skipped(skipped, fields.text)
    if not records and not allow_empty:
        raise LingualiftError(f"{name} holds no records with text; give a non-empty dataset.")
    return records


def warn_skipped(where: list[str], field: str) -> None:
    """Say how many rows were skipped for having no text, and where the first one is."""
    if where:
        logger.warning(
            "skipped %d row%s whose %r is empty or missing (first: %s)",
            len(where), "s" * (len(where) > 1), field, where[0],
        )  # fmt: skip


def _parse_meta(value: Any, where: str) -> dict[str, Any]:
    """``meta`` arrives as a mapping (JSONL) or as JSON text (CSV, Parquet)."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise LingualiftError(f"{where}: the meta field is not valid JSON.") from None
    if not isinstance(value, dict):
        raise LingualiftError(f"{where}: the meta field must be a JSON object.")
    return dict(value)


_RECORD_COLUMNS = ("id", "text", "lang", "source", "meta")


def _parquet_table(rows: list[dict[str, Any]]):
    """Records as a Parquet table whose scalar ``meta`` keys are typed columns of their own.

    A ``meta`` key that every record has, with a number, a string or a boolean (or null)
    as its value, becomes a column (a COMPASS selection's cluster, score, reason, method,
    pool_index), so pandas, DuckDB and ``datasets`` filter on it directly; anything else
    (nested values, mixed types, names taken by the record's own fields) stays in the
    ``meta`` column as JSON. :func:`read_records` reads both back into ``meta``.
    """
    import pyarrow as pa

    keys = dict.fromkeys(key for row in rows for key in row["meta"])
    columns: dict[str, pa.DataType] = {}
    for key in keys:
        if key in _RECORD_COLUMNS or not all(key in r["meta"] for r in rows):
            continue  # a key some records lack stays in the JSON, so it reads back as written
        values = [r["meta"][key] for r in rows if r["meta"][key] is not None]
        kinds = {type(v) for v in values}
        if kinds == {bool}:
            columns[key] = pa.bool_()
        elif kinds and kinds <= {int} and all(abs(v) < 2**63 for v in values):
            columns[key] = pa.int64()
        elif kinds and kinds <= {int, float}:
            columns[key] = pa.float64()
        elif kinds == {str}:
            columns[key] = pa.string()
    table = {name: [r[name] for r in rows] for name in ("id", "text", "lang", "source")}
    for key, kind in columns.items():
        table[key] = [
            float(r["meta"][key]) if kind == pa.float64() and r["meta"][key] is not None
            else r["meta"][key]
            for r in rows
        ]  # fmt: skip
    table["meta"] = [
        json.dumps(
            {k: v for k, v in r["meta"].items() if k not in columns},
            ensure_ascii=False,
            default=str,
        )
        for r in rows
    ]
    schema = pa.schema(
        [
            *[(k, pa.string()) for k in ("id", "text", "lang", "source")],
            *columns.items(),
            ("meta", pa.string()),
        ]
    )
    return pa.Table.from_pydict(table, schema=schema)


def write_records(records: Iterable[Record], path: str | Path) -> Path:
    """Write records atomically; the suffix picks JSONL, CSV/TSV or Parquet.

    Parquet keeps scalar ``meta`` keys as typed columns (:func:`_parquet_table`);
    JSONL keeps ``meta`` nested; CSV/TSV hold it as JSON text.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise LingualiftError(f"Cannot write {path}: use one of {', '.join(FORMATS)}.")
    rows = [r.to_dict() for r in records]
    with atomic_path(path) as tmp:
        if fmt == "jsonl":
            with tmp.open("w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(_parquet_table(rows), tmp)
        else:
            buffer = io.StringIO()
            writer = csv.DictWriter(
                buffer,
                fieldnames=["id", "text", "lang", "source", "meta"],
                delimiter="\t" if fmt == "tsv" else ",",
            )
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "meta": json.dumps(row["meta"], ensure_ascii=False)})
            tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path
