"""What a data file is: its format from the name, checked against its first bytes.

A file's suffixes name its format and compression (``pool.jsonl.gz``,
``usage.csv.zst``, ``train.parquet``). Before anything is parsed the first
bytes are checked against that claim, so a misnamed file fails with one
sentence that says what the name promised and what the bytes look like,
instead of a decoder's error deep inside a job. Decompression is pyarrow's
(gzip, zstd, bz2, lz4 codecs), already a dependency.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import BinaryIO

from lingualift.errors import LingualiftError

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}
"""Data suffix -> format. ``.json`` holds JSON Lines or one JSON array of objects."""
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2", ".lz4": "lz4"}
"""Compression suffix -> pyarrow codec name."""
FORMAT_NAMES = {
    "jsonl": "JSON Lines",
    "json": "JSON",
    "csv": "CSV",
    "tsv": "TSV",
    "parquet": "Parquet",
}
_MAGIC = {
    "gzip": b"\x1f\x8b",
    "zstd": b"\x28\xb5\x2f\xfd",
    "bz2": b"BZh",
    "lz4": b"\x04\x22\x4d\x18",
    "parquet": b"PAR1",
}
_MAGIC_NAMES = {
    "gzip": "gzip data",
    "zstd": "zstd data",
    "bz2": "bzip2 data",
    "lz4": "lz4 data",
    "parquet": "Parquet",
}
_SUFFIX_OF = {"gzip": ".gz", "zstd": ".zst", "bz2": ".bz2", "lz4": ".lz4", "parquet": ".parquet"}
ACCEPTED = (
    ".jsonl, .json (lines or an array), .csv, .tsv or .parquet, optionally compressed "
    "(.gz, .zst, .bz2, .lz4)"
)
"""What a data file may be, for error messages."""


@dataclasses.dataclass(frozen=True)
class FileFormat:
    """A data file's format and compression, as its name gives them."""

    kind: str
    """jsonl, json, csv, tsv or parquet."""
    compression: str | None = None
    """gzip, zstd, bz2, lz4 or None."""

    def describe(self) -> str:
        name = FORMAT_NAMES[self.kind]
        return f"{self.compression}-compressed {name}" if self.compression else name


def split_suffixes(path: str | Path) -> tuple[str | None, str | None]:
    """``(format, compression)`` from the name's last suffixes (None where unknown)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes = suffixes[:-1]
    kind = FORMATS.get(suffixes[-1]) if suffixes else None
    return kind, compression


def is_data_file(path: str | Path) -> bool:
    """Whether the name is one of a data file (what a folder of shards is made of)."""
    return split_suffixes(path)[0] is not None


def file_format(path: str | Path) -> FileFormat:
    """The format a file's name gives, or one sentence on what names are read."""
    kind, compression = split_suffixes(path)
    if kind is None:
        suffix = "".join(Path(path).suffixes) or "no suffix"
        raise LingualiftError(
            f"Cannot tell the format of {path} ({suffix}); name it {ACCEPTED}, "
            "or pass a folder of such files or hf:<dataset>."
        )
    return FileFormat(kind, compression)


def looks_like(head: bytes) -> str:
    """What the first bytes of a file look like, in words (for error messages)."""
    for name, magic in _MAGIC.items():
        if head.startswith(magic):
            return _MAGIC_NAMES[name]
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        return "an empty file"
    if text[:1] == b"[":
        return "a JSON array"
    if text[:1] == b"{":
        return "JSON"
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data"
    return "text"


def check_bytes(path: Path, fmt: FileFormat) -> None:
    """Fail in one sentence when the first bytes contradict what the name says."""
    with path.open("rb") as handle:
        head = handle.read(64)
    expected = fmt.compression or ("parquet" if fmt.kind == "parquet" else None)
    if expected is not None:
        if not head.startswith(_MAGIC[expected]):
            raise LingualiftError(
                f"{path} is named as {fmt.describe()} but its bytes are {looks_like(head)}, "
                f"not {_MAGIC_NAMES[expected]}; rename the file to match its content."
            )
        return
    for name, suffix in _SUFFIX_OF.items():
        if head.startswith(_MAGIC[name]):
            raise LingualiftError(
                f"{path} is named as {fmt.describe()} but its bytes are {_MAGIC_NAMES[name]}; "
                f"name it with {suffix} at the end so it is read as what it is."
            )


def open_bytes(path: Path, fmt: FileFormat) -> BinaryIO:
    """The file's bytes, decompressed when its name says so (a buffered, line-iterable stream)."""
    if fmt.compression is None:
        return path.open("rb")
    import pyarrow as pa

    return io.BufferedReader(pa.input_stream(str(path), compression=fmt.compression))


def read_all(path: Path, fmt: FileFormat) -> bytes:
    """All of the file's (decompressed) bytes, or one sentence when it is damaged."""
    try:
        with open_bytes(path, fmt) as handle:
            return handle.read()
    except OSError as exc:  # pyarrow's codecs raise OSError for truncated or corrupt data
        raise LingualiftError(
            f"{path} could not be decompressed as {fmt.compression} ({exc}); "
            "the file is damaged or truncated, so recompress it from the original."
        ) from None
