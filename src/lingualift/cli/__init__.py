"""The ``lingualift`` command: a thin map from verbs to library functions.

Each verb lives in a small module of this package with a ``register(subparsers)``
function; the module only parses arguments and calls the library. Heavy imports
happen inside the handlers so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from lingualift import __version__
from lingualift.errors import LingualiftError

# One entry per verb module, in the order ``--help`` lists them.
VERB_MODULES = (
    "lingualift.cli.info",
    "lingualift.cli.export_base",
    "lingualift.cli.plan",
    "lingualift.cli.corpus",
    "lingualift.cli.quickstart",
    "lingualift.cli.select",
    "lingualift.cli.train",
    "lingualift.cli.adapters",
    "lingualift.cli.monitor",
    "lingualift.cli.ecda",
    "lingualift.cli.generate",
    "lingualift.cli.serve",
    "lingualift.cli.shifcon",
    "lingualift.cli.eval",
    "lingualift.cli.cloze",
    "lingualift.cli.report",
    "lingualift.cli.experiment",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lingualift",
        description="Lift an LLM's quality in non-dominant languages (COMPASS, ShifCon, evaluation).",
    )
    parser.add_argument("--version", action="version", version=f"lingualift {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)
    for name in VERB_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        result = args.handler(args)
    except LingualiftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished outputs are intact, rerun to resume.", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
