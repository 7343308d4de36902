"""Reading user text files as UTF-8, with errors that name the file, line and byte.

Every text input (data files, recipes, results, logs) is UTF-8. A file in
another encoding, or with a stray binary byte, fails with one sentence that
says where the first bad byte is and what to do, instead of a
``UnicodeDecodeError`` traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lingualift.errors import LingualiftError

_ADVICE = "save it as UTF-8 (e.g. iconv -f <encoding> -t utf-8) or remove that byte"


def _bad_bytes(path: Path, line_no: int, offset: int, data: bytes) -> LingualiftError:
    return LingualiftError(
        f"{path}:{line_no}: byte {offset} ({data[offset : offset + 1]!r}) is not UTF-8; {_ADVICE}."
    )


def decode(data: bytes, path: str | Path, first_line: int = 1) -> str:
    """``data`` as UTF-8 text (a BOM is dropped), or an error naming the line and byte offset."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = first_line + data.count(b"\n", 0, exc.start)
        start_of_line = data.rfind(b"\n", 0, exc.start) + 1
        raise _bad_bytes(
            Path(path), line, exc.start - start_of_line, data[start_of_line:]
        ) from None


def read_text(path: str | Path) -> str:
    """The whole file as UTF-8 text."""
    path = Path(path)
    return decode(path.read_bytes(), path)


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line, streamed (a file can be larger than memory)."""
    path = Path(path)
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise _bad_bytes(path, line_no, exc.start, raw) from None
            yield line_no, text
