"""Read and write :class:`Record` datasets, in every format :mod:`lingualift.data.readers` reads.

:func:`read_records` reads a file, a folder or an ``hf:`` dataset (see
:func:`~lingualift.data.readers.iter_rows`) into records; a
:class:`~lingualift.data.columns.Columns` mapping says which columns hold the
text, id and language, and columns that are not mapped are kept in
``Record.meta``. :func:`write_records` writes JSON Lines, a JSON array, CSV/TSV
or Parquet, compressed when the name ends in ``.gz``, ``.zst``, ``.bz2`` or ``.lz4``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_path
from lingualift.data.columns import Columns, column_hint
from lingualift.data.formats import ACCEPTED, split_suffixes
from lingualift.data.readers import describe_source, iter_rows
from lingualift.data.records import Record
from lingualift.errors import LingualiftError
from lingualift.languages import normalize_language

logger = logging.getLogger(__name__)

FieldMap = Columns
"""The earlier name of :class:`~lingualift.data.columns.Columns`."""

__all__ = ["Columns", "FieldMap", "iter_rows", "read_records", "warn_skipped", "write_records"]


def read_records(
    source: str | Path,
    fields: Columns | None = None,
    allow_empty: bool = False,
    option: str = "columns",
) -> list[Record]:
    """Read a dataset into records, naming the file and line of any bad row.

    ``option`` is the config key of the mapping (``columns``, ``pool_fields``, ...),
    so an error says what to set.
    """
    fields = fields or Columns()
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
                f"{where}: no {fields.text!r} column in this {describe_source(source)} row "
                f"(columns: {', '.join(map(str, row))}); map the text column with "
                f"{column_hint('text', option)}."
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


def check_records_name(path: str | Path) -> Path:
    """Refuse a records file whose name picks no format (before any work is done for it)."""
    path = Path(path)
    if split_suffixes(path)[0] is None:
        raise LingualiftError(f"Cannot write {path}: name it {ACCEPTED}.")
    return path


def write_records(records: Iterable[Record], path: str | Path) -> Path:
    """Write records atomically; the name picks the format and compression.

    ``.jsonl`` keeps ``meta`` nested, ``.json`` writes one array of the same
    objects, ``.csv``/``.tsv`` hold ``meta`` as JSON text, Parquet keeps scalar
    ``meta`` keys as typed columns (:func:`_parquet_table`); a further ``.gz``,
    ``.zst``, ``.bz2`` or ``.lz4`` compresses the file.
    """
    path = check_records_name(path)
    kind, compression = split_suffixes(path)
    rows = [r.to_dict() for r in records]
    if kind == "parquet":
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(_parquet_table(rows), buffer)
        data = buffer.getvalue()
    elif kind == "jsonl":
        data = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows).encode()
    elif kind == "json":
        data = json.dumps(rows, ensure_ascii=False, default=str, indent=1).encode()
    else:
        text = io.StringIO()
        writer = csv.DictWriter(
            text,
            fieldnames=["id", "text", "lang", "source", "meta"],
            delimiter="\t" if kind == "tsv" else ",",
        )
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "meta": json.dumps(row["meta"], ensure_ascii=False)})
        data = text.getvalue().encode("utf-8")
    with atomic_path(path) as tmp:
        if compression is None:
            tmp.write_bytes(data)
        else:
            import pyarrow as pa

            with pa.output_stream(str(tmp), compression=compression) as stream:
                stream.write(data)
    return path
