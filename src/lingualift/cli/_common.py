"""Helpers shared by verb modules: recipe + override arguments, JSON printing, SIGTERM.

One convention for every verb with a config: ``--config recipe.yaml`` and
``key=value`` overrides with the config's own names (``store=``, ``out_dir=``,
``out=``, ``lang=``...). Older flags stay as aliases of those keys
(:class:`Flag`: ``--store X`` is ``store=X``), and bare words fill the verb's
positional keys (``lingualift corpus en sw`` is ``langs=[en,sw]``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import re
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from lingualift.config import RENAMED_KEYS, describe, load_config
from lingualift.errors import LingualiftError

_KEY = re.compile(r"^([A-Za-z_]\w*)(?:\.[A-Za-z_]\w*)*=")


@dataclasses.dataclass(frozen=True)
class Flag:
    """A command-line flag kept as an alias of a config key: ``--out X`` means ``out=X``."""

    options: tuple[str, ...]
    """The flag's spellings, e.g. ('--out', '-o')."""
    key: str
    """The config key it sets."""
    switch: bool = False
    """A flag without a value, meaning key=true."""


def add_verb(
    subparsers: Any,
    name: str,
    help: str,
    handler: Callable[[argparse.Namespace], int],
    config_cls: type | None = None,
    description: str | None = None,
    *,
    flags: Sequence[Flag] = (),
    positional: str | tuple[str, ...] | None = None,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """Add a verb; with ``config_cls`` it takes ``--config recipe.yaml``, ``key=value`` overrides,
    ``flags`` as aliases of keys and bare words for the ``positional`` key(s)."""
    if config_cls is not None and epilog is None:
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
        add_config_arguments(parser, config_cls, flags=flags, positional=positional)
    parser.set_defaults(handler=handler)
    return parser


def add_config_arguments(
    parser: argparse.ArgumentParser,
    config_cls: type,
    *,
    flags: Sequence[Flag] = (),
    positional: str | tuple[str, ...] | None = None,
) -> None:
    """The ``key=value`` words (and flag aliases) of a parser whose verb builds ``config_cls``."""
    for flag in flags:
        add_flag(parser, flag)
    words = "key=value" if positional is None else f"{_positional_name(positional)} | key=value"
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar=words,
        help="override a config key (dots for nesting)"
        + ("" if positional is None else f"; other words are {_positional_name(positional)}"),
    )
    parser.set_defaults(config_cls=config_cls, flags=tuple(flags), positional=positional)


def add_flag(parser: argparse.ArgumentParser, flag: Flag) -> None:
    """Add ``flag`` to ``parser``; :func:`split_words` turns it into its ``key=value``."""
    kwargs: dict[str, Any] = {"dest": f"flag__{flag.key}", "default": None}
    if flag.switch:
        kwargs.update(action="store_const", const="true", help=f"same as {flag.key}=true")
    else:
        kwargs.update(metavar=flag.key.upper(), help=f"same as {flag.key}=<value>")
    parser.add_argument(*flag.options, **kwargs)


def _positional_name(positional: str | tuple[str, ...]) -> str:
    return positional if isinstance(positional, str) else " ".join(positional)


def split_words(args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """The overrides (flag aliases first, then ``key=value`` words) and the positional values.

    With a positional key, a word is an override only when it sets a key of the config
    (so a prompt or ``label=path`` that happens to hold '=' stays a positional word).
    """
    overrides = [
        f"{flag.key}={value}"
        for flag in getattr(args, "flags", ())
        if (value := getattr(args, f"flag__{flag.key}")) is not None
    ]
    positional = getattr(args, "positional", None)
    words = list(getattr(args, "overrides", None) or [])
    if positional is None:
        return overrides + words, {}
    known = {f.name for f in dataclasses.fields(args.config_cls)} | set(RENAMED_KEYS)
    bare = []
    for word in words:
        match = _KEY.match(word)
        if match and match.group(1) in known:
            overrides.append(word)
        else:
            bare.append(word)
    if not bare:
        return overrides, {}
    if isinstance(positional, str):  # one list key takes every bare word, as written
        return overrides, {positional: bare}
    if len(bare) > len(positional):
        raise LingualiftError(
            f"Too many arguments ({' '.join(bare)}); this takes {_positional_name(positional)} "
            "and key=value settings."
        )
    return overrides + [f"{key}={word}" for key, word in zip(positional, bare, strict=False)], {}


def config_from_args(args: argparse.Namespace) -> Any:
    """The verb's config: its recipe (if any), the flags, the words, the overrides (or what the
    verb's own ``config_loader`` makes of them, e.g. an experiment's class from the recipe)."""
    loader = getattr(args, "config_loader", None)
    if loader is not None:
        return loader(args)
    overrides, values = split_words(args)
    return load_config(args.config_cls, getattr(args, "config", None), overrides, values=values)


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
