"""Helpers shared by verb modules: recipe + override arguments, JSON printing, SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

from lingualift.config import describe, load_config

C = TypeVar("C")


def add_verb(
    subparsers: Any,
    name: str,
    help: str,
    handler: Any,
    config_cls: type | None = None,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add a verb; with ``config_cls`` it takes ``--config recipe.yaml`` and ``key=value`` overrides."""
    epilog = None
    if config_cls is not None:
        epilog = f"config keys (set in a recipe or as key=value):\n{describe(config_cls)}"
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if config_cls is not None:
        parser.add_argument(
            "--config", "-c", metavar="RECIPE.yaml", help="YAML recipe to start from"
        )
        parser.add_argument(
            "overrides",
            nargs="*",
            metavar="key=value",
            help="override a config key (dots for nesting)",
        )
        parser.set_defaults(config_cls=config_cls)
    parser.set_defaults(handler=handler)
    return parser


def config_from_args(args: argparse.Namespace) -> Any:
    """The verb's config: its recipe (if any) with the command-line overrides applied."""
    return load_config(args.config_cls, args.config, args.overrides)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@contextlib.contextmanager
def sigterm_requests_stop() -> Iterator[threading.Event]:
    """Inside, SIGTERM (``kill``, systemd, ``docker stop``) sets the event it yields.

    Python's default for SIGTERM ends the process at once, with no ``finally`` and no
    clean stop. A long-running verb (``ecda follow=true``) checks the event where stopping
    is safe (between two polls), so a supervisor's SIGTERM never lands in the middle of a
    window or an update, however short the poll interval. Only the main thread can set
    handlers; elsewhere the event is simply never set by a signal.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
