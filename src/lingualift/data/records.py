"""The unit of data everywhere in lingualift: a :class:`Record`."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any


@dataclasses.dataclass
class Record:
    """One piece of text with its language, origin and free-form metadata."""

    id: str
    """Stable identifier, unique within a dataset (verse reference, row number, ...)."""
    text: str
    """The text itself (a query, a prompt, a document, a verse)."""
    lang: str | None = None
    """Canonical language code (see :func:`lingualift.languages.normalize_language`)."""
    source: str | None = None
    """Where the record came from (a file, a dataset, a corpus translation)."""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Anything else: prompt/completion, labels, cluster, score, ..."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def text_hash(text: str) -> str:
    """Content hash used for caches and data fingerprints."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def fingerprint(records: list[Record]) -> str:
    """Order-sensitive hash of a dataset's ids, languages and texts."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(f"{record.id}\t{record.lang}\t{text_hash(record.text)}\n".encode())
    return digest.hexdigest()
