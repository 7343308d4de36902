"""``lingualift corpus``: export the embedded parallel corpus as records."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb


def register(subparsers: Any) -> None:
    parser = add_verb(
        subparsers,
        "corpus",
        "export the embedded parallel corpus (22 languages) to a file",
        run,
        description="Write verses of the embedded corpus as JSONL/CSV/Parquet records. "
        "With two languages, writes aligned pairs (text, lang and meta.parallel_text).",
    )
    parser.add_argument("langs", nargs="+", help="language codes, e.g. sw or en sw")
    parser.add_argument(
        "--books",
        default="all",
        help="book split: all, ot, nt, gospels, epistles, torah, ranges like 40-43",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="at most this many verses per language"
    )
    parser.add_argument(
        "--parallel", action="store_true", help="write aligned pairs of the first two languages"
    )
    parser.add_argument("--out", "-o", required=True, help="output file (.jsonl, .csv, .parquet)")


def run(args: argparse.Namespace) -> int:
    from lingualift.atomic import check_file_target
    from lingualift.data import ParallelCorpus, write_records
    from lingualift.data.corpus import check_limit
    from lingualift.data.io import FORMATS
    from lingualift.errors import LingualiftError

    check_limit(args.limit, "--limit")
    check_file_target(args.out, "corpus export", FORMATS)
    corpus = ParallelCorpus()
    if args.parallel:
        if len(args.langs) != 2:
            raise LingualiftError("--parallel needs exactly two languages, e.g. 'en sw'.")
        pairs = corpus.parallel(args.langs[0], args.langs[1], args.books, limit=args.limit)
        records = []
        for source, target in pairs:
            target.meta.update(parallel_text=source.text, parallel_lang=source.lang)
            records.append(target)
    else:
        records = corpus.multilingual(args.langs, args.books, per_language=args.limit)
    if not records:
        raise LingualiftError("No verses matched; widen --books or check the languages.")
    write_records(records, args.out)
    print(f"wrote {len(records)} records to {args.out}")
    return 0
