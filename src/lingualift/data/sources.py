"""Source specs: the one place where a string names where records come from.

Jobs (and so recipes and the command line) name their inputs as:

- a file: ``.jsonl``/``.json`` (lines or an array), ``.csv``, ``.tsv`` or ``.parquet``,
  optionally compressed (``.gz``, ``.zst``, ``.bz2``, ``.lz4``);
- a folder: a Hugging Face ``save_to_disk`` dataset, or shards (every data file in it);
- a Hugging Face dataset: ``hf:<name>[:<config>][@<split>]`` or ``hf:<name>:<config>:<split>``
  (hub name, saved folder, or a folder of shards);
- verses of the embedded corpus: ``corpus:<langs>[:<books>[:<n>]]`` where
  ``<langs>`` is a comma list (``sw`` or ``fr,hi``), ``all``, or ``all-<codes>``
  (every corpus language but those), ``<books>`` is a book selection
  (``nt``, ``19,40-42``; default all) and ``<n>`` keeps ``n`` verses per language,
  drawn with the job's seed and kept in corpus order (default: every verse).

Components never parse these strings: they take records.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from lingualift.data.columns import Columns
from lingualift.data.corpus import CORPUS_LANGUAGES, ParallelCorpus, parse_books
from lingualift.data.io import read_records
from lingualift.data.records import Record
from lingualift.errors import LingualiftError, require
from lingualift.languages import normalize_language

CORPUS_PREFIX = "corpus:"


@dataclasses.dataclass(frozen=True)
class CorpusSlice:
    """A parsed ``corpus:`` spec."""

    langs: tuple[str, ...]
    books: str
    per_language: int | None


def is_corpus_spec(spec: str | Path | None) -> bool:
    return isinstance(spec, str) and spec.startswith(CORPUS_PREFIX)


def parse_corpus_spec(spec: str) -> CorpusSlice:
    """``corpus:<langs>[:<books>[:<n>]]`` -> :class:`CorpusSlice`, or one clear error."""
    usage = (
        f"{spec!r} must look like corpus:<langs>[:<books>[:<n per language>]], "
        "e.g. corpus:sw:nt:2000 or corpus:all-sw:all:200"
    )
    parts = spec[len(CORPUS_PREFIX) :].split(":")
    require(1 <= len(parts) <= 3 and parts[0].strip(), usage + ".")
    langs_part = parts[0].strip()
    if langs_part.startswith("all"):
        rest = langs_part[3:]
        require(
            rest == "" or rest.startswith("-"), usage + f"; {langs_part!r} is not a language list."
        )
        excluded = {normalize_language(x) for x in rest.lstrip("-").split(",") if x.strip()}
        langs = tuple(lang for lang in CORPUS_LANGUAGES if lang not in excluded)
    else:
        langs = tuple(
            dict.fromkeys(normalize_language(x) for x in langs_part.split(",") if x.strip())
        )
    missing = [lang for lang in langs if lang not in CORPUS_LANGUAGES]
    require(
        not missing,
        f"The embedded corpus has no {missing[0] if missing else ''!r} text; choose from "
        f"{', '.join(CORPUS_LANGUAGES)} or give a data file.",
    )
    books = parts[1].strip() if len(parts) > 1 and parts[1].strip() else "all"
    parse_books(books)  # a bad book selection fails here, by name
    per_language = None
    if len(parts) == 3:
        raw = parts[2].strip()
        require(raw.isdigit() and int(raw) > 0, usage + f"; {raw!r} is not a positive count.")
        per_language = int(raw)
    return CorpusSlice(langs, books, per_language)


def read_corpus(piece: CorpusSlice, seed: int = 0) -> list[Record]:
    """The verses a :class:`CorpusSlice` names; ids are ``<lang>:<book>.<chapter>.<verse>``."""
    corpus = ParallelCorpus()
    rng = np.random.default_rng(seed)
    records: list[Record] = []
    for lang in piece.langs:
        rows = corpus.multilingual([lang], piece.books)
        if piece.per_language is not None and piece.per_language < len(rows):
            keep = np.sort(rng.choice(len(rows), piece.per_language, replace=False))
            rows = [rows[i] for i in keep]
        records.extend(rows)
    return records


def read_source(
    spec: str | Path,
    fields: Columns | None = None,
    seed: int = 0,
    role: str = "input",
    allow_empty: bool = False,
    option: str = "columns",
) -> list[Record]:
    """Records from a file, folder, ``hf:`` dataset or ``corpus:`` slice (module docstring).

    ``fields`` maps columns (corpus slices ignore it); ``option`` is its config key,
    named in errors.
    """
    spec = str(spec).strip()
    require(
        spec, f"The {role} is empty; give a data file or folder, hf:<dataset> or corpus:<langs>."
    )
    if is_corpus_spec(spec):
        records = read_corpus(parse_corpus_spec(spec), seed)
        if not records and not allow_empty:
            raise LingualiftError(
                f"The {role} {spec!r} matched no verses; widen the books or languages."
            )
        return records
    return read_records(spec, fields, allow_empty=allow_empty, option=option)
