"""``lingualift corpus``: export the embedded parallel corpus as records."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from lingualift.cli._common import Flag, add_verb, config_from_args
from lingualift.cli.verbs import Verb
from lingualift.errors import require


@dataclasses.dataclass
class CorpusConfig:
    """Settings of ``lingualift corpus``."""

    langs: list[str] = dataclasses.field(default_factory=list)
    """Language codes, e.g. [sw] or [en, sw] (also the command's bare words: corpus en sw)."""
    books: str = "all"
    """Book split: all, ot, nt, gospels, epistles, torah, or numbers and ranges like 40-43."""
    limit: int | None = None
    """At most this many verses per language (default: every verse of the books)."""
    parallel: bool = False
    """Write aligned pairs of the first two languages (text, lang and meta.parallel_text)."""
    out: str = ""
    """Output file (.jsonl, .csv, .parquet)."""

    def __post_init__(self) -> None:
        require(self.langs, "Name at least one language, e.g. 'lingualift corpus sw out=sw.jsonl'.")
        require(self.out, "Set out=<file> (.jsonl, .csv or .parquet) for the records.")
        require(
            self.limit is None or self.limit >= 1, f"limit must be at least 1, got {self.limit}."
        )
        require(
            not self.parallel or len(self.langs) == 2,
            "parallel=true needs exactly two languages, e.g. 'en sw'.",
        )


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        config_cls=CorpusConfig,
        description="Write verses of the embedded corpus as JSONL/CSV/Parquet records. "
        "With parallel=true and two languages, writes aligned pairs (text, lang and "
        "meta.parallel_text).",
        flags=[
            Flag(("--books",), "books"),
            Flag(("--limit",), "limit"),
            Flag(("--parallel",), "parallel", switch=True),
            Flag(("--out", "-o"), "out"),
        ],
        positional="langs",
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.atomic import check_file_target
    from lingualift.data import ParallelCorpus, write_records
    from lingualift.data.io import check_records_name

    config = config_from_args(args)
    check_records_name(check_file_target(config.out, "corpus export"))  # before the corpus is read
    corpus = ParallelCorpus()
    if config.parallel:
        source_lang, target_lang = config.langs
        pairs = corpus.parallel(source_lang, target_lang, config.books, limit=config.limit)
        records = []
        for source, target in pairs:
            target.meta.update(parallel_text=source.text, parallel_lang=source.lang)
            records.append(target)
    else:
        records = corpus.multilingual(config.langs, config.books, per_language=config.limit)
    require(records, "No verses matched; widen books or check the languages.")
    write_records(records, config.out)
    print(f"wrote {len(records)} records to {config.out}")
    return 0
