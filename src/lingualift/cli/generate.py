"""``lingualift generate``: generate with per-language adapters, routed per prompt."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lingualift.cli._common import add_verb


def register(subparsers: Any) -> None:
    parser = add_verb(
        subparsers,
        "generate",
        "generate text, routing each prompt to its language's adapter",
        run,
        description="Load one base model with the current adapter of each language and generate; "
        "each prompt uses the adapter of --lang or of its detected language (py3langid, offline), "
        "mixed-language batches run in one forward, and a language with no adapter falls back to "
        "the base model (reported on stderr).",
    )
    parser.add_argument("prompts", nargs="*", help="prompts (or use --input)")
    parser.add_argument("--input", "-i", help="JSONL/CSV/Parquet with a text column (and lang)")
    parser.add_argument("--text-field", default="text", help="prompt column of --input")
    parser.add_argument("--lang", help="language of every prompt (default: detect per prompt)")
    parser.add_argument("--model", default=None, help="base model (default: embedded Gemma 3 270M)")
    parser.add_argument("--store", help="adapter store root (default $LINGUALIFT_HOME/adapters)")
    parser.add_argument("--langs", help="comma-separated adapters to load (default: all)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--chat", action="store_true", help="wrap prompts in the chat template")
    parser.add_argument(
        "--strict", action="store_true", help="fail instead of falling back to the base model"
    )
    parser.add_argument("--out", "-o", help="write results as JSONL/Parquet records here")


def run(args: argparse.Namespace) -> int:
    import json
    import logging

    from lingualift.adapters.routing import Router
    from lingualift.errors import LingualiftError

    if args.out:  # refused before the model loads, not after generating
        from lingualift.atomic import check_file_target
        from lingualift.data.io import FORMATS

        check_file_target(args.out, "generations", FORMATS)
    prompts: list[str] = list(args.prompts)
    langs: list[str | None] | None = [args.lang] * len(prompts) if args.lang else None
    if args.input:
        from lingualift.data import FieldMap, read_records

        records = read_records(args.input, FieldMap(text=args.text_field))
        prompts += [r.text for r in records]
        if args.lang:
            langs = [args.lang] * len(prompts)
        elif any(r.lang for r in records):
            langs = [None] * len(args.prompts) + [r.lang for r in records]
    if not prompts:
        raise LingualiftError("No prompts; pass them as arguments or with --input <file>.")
    # Fallbacks are reported below, once per prompt; the router's own warning would repeat them.
    logging.getLogger("lingualift.adapters.routing").setLevel(logging.ERROR)
    router = Router(
        args.model,
        store=args.store,
        langs=args.langs.split(",") if args.langs else None,
        strict=args.strict,
    )
    results = router.generate(
        prompts,
        langs,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        chat=args.chat,
    )
    for result in results:
        if result.route.note:
            print(f"note: {result.prompt[:40]!r}: {result.route.note}", file=sys.stderr)
    if args.out:
        from lingualift.data import Record, write_records

        write_records(
            [
                Record(
                    id=str(i), text=r.text, lang=r.route.lang, source="generate", meta=r.to_dict()
                )
                for i, r in enumerate(results)
            ],
            args.out,
        )
        print(f"wrote {len(results)} generations to {args.out}")
    else:
        for r in results:
            print(json.dumps(r.to_dict(), ensure_ascii=False))
    return 0
