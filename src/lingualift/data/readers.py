"""One reader for user data: every file format, folder and dataset a verb accepts, as rows.

A source is

- a file: JSON Lines (``.jsonl``/``.ndjson``), JSON (``.json``: lines, or one
  array of objects), CSV, TSV or Parquet, optionally compressed (``.gz``,
  ``.zst``, ``.bz2``, ``.lz4``; see :mod:`lingualift.data.formats`);
- a folder: a dataset saved by Hugging Face ``save_to_disk``, or else every
  data file under it (shards, in path order; hidden files are skipped);
- ``hf:<name>[:<config>][@<split>]`` (or ``hf:<name>:<config>:<split>``): a
  Hugging Face dataset by hub name, a ``save_to_disk`` folder, or a folder of
  shards that ``datasets.load_dataset`` reads (``hf:shards/@test`` takes its
  test split).

:func:`iter_rows` yields ``(where, row number, row)``: ``where`` is the file (or
``hf:`` spec) and the number is its line (JSON Lines, CSV) or row (JSON array,
Parquet, datasets), so every error can name both. A :class:`~lingualift.data.columns.Columns`
mapping renames columns to lingualift's names on the way out.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lingualift.data.columns import Columns
from lingualift.data.formats import (
    ACCEPTED,
    FileFormat,
    check_bytes,
    file_format,
    is_data_file,
    open_bytes,
    read_all,
)
from lingualift.errors import LingualiftError, first_line
from lingualift.textio import decode

Row = tuple[str, int, dict[str, Any]]
"""(where, line or row number, row)."""
OnError = Callable[[str, int, str], None]
"""Called with (where, line, reason) for a row that cannot be read, which is then skipped."""
HF_PREFIX = "hf:"
_SAVED_MARKERS = ("dataset_dict.json", "state.json")

# Long documents are normal input: lift the csv module's 128 KiB limit per field.
csv.field_size_limit(2**31 - 1)


@dataclasses.dataclass(frozen=True)
class HFSpec:
    """A parsed ``hf:`` source."""

    name: str
    """Hub name or local folder."""
    config: str | None = None
    split: str | None = None


def parse_hf_spec(spec: str) -> HFSpec:
    """``hf:<name>[:<config>][@<split>]`` or ``hf:<name>:<config>:<split>`` -> :class:`HFSpec`."""
    body = spec[len(HF_PREFIX) :] if spec.startswith(HF_PREFIX) else spec
    body, at, split = body.partition("@")
    parts = body.split(":")
    if not parts[0].strip() or len(parts) > 3 or (at and (not split or len(parts) > 2)):
        raise LingualiftError(
            f"{spec!r} must look like hf:<name>[:<config>][@<split>] or "
            "hf:<name>:<config>:<split>, e.g. hf:CohereForAI/Global-MMLU:sw@test."
        )
    config = parts[1].strip() if len(parts) > 1 and parts[1].strip() else None
    if len(parts) == 3:
        split = parts[2]
    return HFSpec(parts[0].strip(), config, split.strip() or None)


def is_saved_dataset(folder: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return folder.is_dir() and any((folder / name).is_file() for name in _SAVED_MARKERS)


def shard_files(folder: Path) -> list[Path]:
    """Data files under ``folder`` (recursively, hidden ones skipped), in path order."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and is_data_file(path)
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def describe_source(source: str | Path) -> str:
    """What a source is read as, in words: 'gzip-compressed JSON Lines', 'Parquet shards', ..."""
    spec = str(source)
    if spec.startswith(HF_PREFIX):
        name = parse_hf_spec(spec).name
        if is_saved_dataset(Path(name)):
            return "a saved Hugging Face dataset"
        return f"the Hugging Face dataset {name!r}"
    path = Path(spec)
    if path.is_dir():
        if is_saved_dataset(path):
            return "a saved Hugging Face dataset"
        files = shard_files(path)
        kinds = sorted({file_format(f).describe() for f in files})
        return f"a folder of {' and '.join(kinds) or 'no data'} files"
    fmt = file_format(path)
    return fmt.describe()


def iter_rows(
    source: str | Path, columns: Columns | None = None, on_error: OnError | None = None
) -> Iterator[Row]:
    """Every row of ``source`` (module docstring), columns renamed by ``columns`` when given.

    A malformed line (bad JSON, not an object, more CSV fields than the header)
    raises one sentence naming file and line, unless ``on_error`` is given: then
    it is reported there and skipped (the drift monitor counts such lines).
    """
    rows = _raw_rows(str(source).strip(), on_error)
    if columns is None:
        yield from rows
        return
    for where, number, row in rows:
        yield where, number, columns.apply(row)


def _raw_rows(spec: str, on_error: OnError | None) -> Iterator[Row]:
    if not spec:
        raise LingualiftError("No data source given; pass a data file, folder or hf:<dataset>.")
    if spec.startswith(HF_PREFIX):
        yield from _hf_rows(spec)
        return
    path = Path(spec)
    if path.is_dir():
        if is_saved_dataset(path):
            yield from _hf_rows(HF_PREFIX + spec)
            return
        files = shard_files(path)
        if not files:
            raise LingualiftError(
                f"{path} is a folder with no data files and is not a saved Hugging Face "
                f"dataset; put {ACCEPTED} files in it, or pass hf:<folder> or one file."
            )
        for shard in files:
            yield from _file_rows(shard, on_error)
        return
    if not path.is_file():
        raise LingualiftError(f"Input file {path} does not exist; check the path.")
    yield from _file_rows(path, on_error)


def _file_rows(path: Path, on_error: OnError | None) -> Iterator[Row]:
    fmt = file_format(path)
    check_bytes(path, fmt)
    if fmt.kind == "parquet":
        rows = _parquet_rows(path, fmt)
    elif fmt.kind in ("csv", "tsv"):
        rows = _csv_rows(path, fmt, "\t" if fmt.kind == "tsv" else ",", on_error)
    else:
        rows = _json_rows(path, fmt, on_error)
    where = str(path)
    for number, row in rows:
        yield where, number, row


def _bad(path: Path, number: int, reason: str, on_error: OnError | None, advice: str) -> None:
    if on_error is None:
        raise LingualiftError(f"{path}:{number}: {reason}; {advice}.")
    on_error(str(path), number, reason)


def _json_rows(
    path: Path, fmt: FileFormat, on_error: OnError | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """JSON Lines, or (a file starting with '[') one array of objects."""
    if _starts_with_bracket(path, fmt):
        yield from _json_array_rows(path, fmt, on_error)
        return
    read_as = f"read as {fmt.describe() if fmt.kind == 'jsonl' else 'JSON Lines'}"
    try:
        with open_bytes(path, fmt) as handle:
            for number, raw in enumerate(handle, start=1):
                text = decode(raw, path, number)
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as exc:
                    if number == 1:
                        _explain_json_document(path, fmt)
                    _bad(
                        path,
                        number,
                        f"malformed JSON ({exc.msg}) in a file {read_as}, one object per line",
                        on_error,
                        "fix or remove that line",
                    )
                    continue
                if number == 1 and fmt.kind == "json" and _holds_records(row):
                    _explain_json_document(path, fmt)  # one object wrapping the records
                if not isinstance(row, dict):
                    _bad(
                        path,
                        number,
                        f"a JSON {type(row).__name__} where {read_as} expects an object per line",
                        on_error,
                        "make each line one JSON object",
                    )
                    continue
                yield number, row
    except OSError as exc:  # a compressed stream that ends early or is corrupt
        raise LingualiftError(
            f"{path} could not be decompressed as {fmt.compression} ({exc}); the file is "
            "damaged or truncated, so recompress it from the original."
        ) from None


def _starts_with_bracket(path: Path, fmt: FileFormat) -> bool:
    try:
        with open_bytes(path, fmt) as handle:
            head = handle.read(4096)
    except OSError:
        return False  # the line reader names the damage
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"["


def _json_array_rows(
    path: Path, fmt: FileFormat, on_error: OnError | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Items of one JSON array, numbered from 1 (the item, not the line)."""
    text = decode(read_all(path, fmt), path)
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LingualiftError(
            f"{path}:{exc.lineno}: malformed JSON ({exc.msg}, column {exc.colno}) in a file "
            "read as one JSON array (it starts with '['); fix the file there."
        ) from None
    if not isinstance(items, list):  # '[' then something else cannot parse; kept for safety
        raise LingualiftError(f"{path} is not a JSON array of objects; give one.")
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            _bad(
                path,
                number,
                f"item {number} of the JSON array is a {type(item).__name__}, "
                "where an object per item is expected",
                on_error,
                'make every item an object such as {"text": ...}',
            )
            continue
        yield number, item


def _holds_records(row: Any) -> bool:
    """An object with a list of objects inside: likely a wrapper such as {"data": [...]}."""
    return isinstance(row, dict) and any(
        isinstance(v, list) and v and all(isinstance(x, dict) for x in v) for v in row.values()
    )


def _explain_json_document(path: Path, fmt: FileFormat) -> None:
    """A ``.json`` file that is one pretty-printed document: say what it holds, not 'line 1'."""
    try:
        document = json.loads(decode(read_all(path, fmt), path))
    except (json.JSONDecodeError, LingualiftError):
        return  # really malformed: the line-by-line message names the line
    if isinstance(document, dict):
        keys = ", ".join(list(map(str, document))[:5])
        lists = [k for k, v in document.items() if isinstance(v, list)]
        extract = (
            f"; if the records are the list under {lists[0]!r}, extract them "
            f"(e.g. jq '.{lists[0]}' {path.name} > records.json)"
            if lists
            else ""
        )
        raise LingualiftError(
            f"{path} holds one JSON object (keys: {keys}), not records; expected JSON Lines "
            f"(one object per line) or a JSON array of objects{extract}."
        )


def _csv_rows(
    path: Path, fmt: FileFormat, delimiter: str, on_error: OnError | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    text = decode(read_all(path, fmt), path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if None in row:
                _bad(
                    path,
                    reader.line_num,
                    f"more fields than the header has, in a file read as {fmt.describe()}",
                    on_error,
                    "quote fields that contain the delimiter",
                )
                continue
            yield reader.line_num, row
    except csv.Error as exc:
        raise LingualiftError(
            f"{path}:{reader.line_num}: malformed {fmt.describe()} ({exc}); fix that line."
        ) from None


def _parquet_rows(path: Path, fmt: FileFormat) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows in batches (a file may be larger than memory), numbered from 1."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if fmt.compression:
            parquet = pq.ParquetFile(pa.BufferReader(read_all(path, fmt)))
        else:
            parquet = pq.ParquetFile(path)
        number = 0
        for batch in parquet.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except (OSError, pa.ArrowException) as exc:  # pyarrow's errors for a damaged file
        raise LingualiftError(
            f"{path} is not a readable Parquet file ({first_line(exc)}); re-export it."
        ) from None


def _hf_rows(spec: str) -> Iterator[Row]:
    """Rows of an ``hf:`` dataset (hub name, saved folder or folder of shards)."""
    try:
        import datasets
    except ImportError:
        raise LingualiftError(
            "Reading Hugging Face datasets needs the datasets package; "
            "pip install 'lingualift[hf]'."
        ) from None
    hf = parse_hf_spec(spec)
    folder = Path(hf.name)
    try:
        if is_saved_dataset(folder):
            loaded = datasets.load_from_disk(str(folder))
        elif folder.is_dir():
            loaded = datasets.load_dataset(str(folder), hf.config)
        else:
            loaded = datasets.load_dataset(hf.name, hf.config, split=hf.split or "train")
    except Exception as exc:  # datasets raises many types (hub, builder, file errors)
        raise LingualiftError(
            f"Could not load {spec} ({first_line(exc, 160)}); check the name, config and split "
            "(offline, only local folders and cached hub datasets load)."
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        loaded = _pick_split(spec, loaded, hf.split)
    for number, row in enumerate(loaded, start=1):
        yield spec, number, row


def _pick_split(spec: str, splits: Any, split: str | None) -> Any:
    """The split asked for; else the only one, or 'train'; else one sentence listing them."""
    names = list(splits)
    if split is not None:
        if split not in splits:
            raise LingualiftError(
                f"{spec} has no split {split!r} (it has: {', '.join(names)}); "
                "name one with @<split>."
            )
        return splits[split]
    if len(names) == 1:
        return splits[names[0]]
    if "train" in splits:
        return splits["train"]
    raise LingualiftError(
        f"{spec} has several splits ({', '.join(names)}); name one with @<split>, "
        f"e.g. {spec}@{names[0]}."
    )
