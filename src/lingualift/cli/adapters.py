"""``lingualift adapters list|show|promote|rollback``: inspect and switch stored adapters."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from lingualift.cli._common import (
    Flag,
    add_config_arguments,
    add_flag,
    add_verb,
    config_from_args,
    print_json,
)
from lingualift.cli.verbs import Verb
from lingualift.config import describe


@dataclasses.dataclass
class AdaptersConfig:
    """Settings of ``lingualift adapters <action>``."""

    store: str | None = None
    """Adapter store root (default $LINGUALIFT_HOME/adapters)."""
    lang: str | None = None
    """The language (list: only this one; show, promote, rollback: required)."""
    version: str | None = None
    """v<N> or N (show: default the current one; promote: required)."""
    json: bool = False
    """list: print JSON."""


STORE = Flag(("--store",), "store")
JSON = Flag(("--json",), "json", switch=True)

# action -> (help, the keys its bare words fill, the keys it needs)
ACTIONS = {
    "list": ("every version, current ones marked", ("lang",), ()),
    "show": ("print a version's card", ("lang", "version"), ("lang",)),
    "promote": ("make a version the current one", ("lang", "version"), ("lang", "version")),
    "rollback": ("go back to the previous current version", ("lang",), ("lang",)),
}


def register(subparsers: Any, verb: Verb) -> None:
    parser = add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        description="Manage the adapter store (<store>/<lang>/v<N>/ PEFT folders with card.json "
        "and a current pointer per language): lingualift adapters list store=<root>, "
        "lingualift adapters promote sw v2.",
        epilog=f"config keys (as key=value after the action):\n{describe(AdaptersConfig)}",
    )
    add_flag(parser, STORE)  # before the action: lingualift adapters --store <root> list
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    for action, (help, words, _) in ACTIONS.items():
        sub = actions.add_parser(action, help=help, description=help)
        flags = [JSON] if action == "list" else []
        add_config_arguments(sub, AdaptersConfig, flags=flags, positional=words)
        sub.set_defaults(flags=(STORE, *flags))  # --store is read from the verb's own flag


def run(args: argparse.Namespace) -> int:
    from lingualift.adapters.store import AdapterStore
    from lingualift.errors import require

    config = config_from_args(args)
    for key in ACTIONS[args.action][2]:
        require(getattr(config, key), f"adapters {args.action} needs {key}=<value> (or as a word).")
    store = AdapterStore(config.store)
    if args.action == "list":
        rows = [v.summary() for v in store.list(config.lang)]
        if config.json:
            print_json(rows)
        elif not rows:
            print(f"no adapters in {store.root}")
        else:
            print(
                f"{'':2}{'adapter':<10} {'created':<26} {'steps':>6} {'eval loss':>10}  base model"
            )
            for row in rows:
                mark = ("*" if row["current"] else " ") + ("!" if row["problem"] else " ")
                loss = f"{row['eval_loss']:.4f}" if row["eval_loss"] is not None else "-"
                print(
                    f"{mark}{row['lang'] + '/v' + str(row['version']):<10} {row['created'] or '-':<26}"
                    f" {row['steps'] if row['steps'] is not None else '-':>6} {loss:>10}  "
                    f"{row['base_model'] or '-'}"
                )
            broken = [row for row in rows if row["problem"]]
            for row in broken:
                print(f"! {row['lang']}/v{row['version']}: {row['problem']}")
            print("* current   ! cannot be loaded")
    elif args.action == "show":
        version = store.get(config.lang, config.version)
        print_json({"path": str(version.path), "current": version.current, **version.card})
    elif args.action == "promote":
        version = store.promote(config.lang, config.version)
        print(f"{version.name} is now current ({version.path})")
    elif args.action == "rollback":
        version = store.rollback(config.lang)
        print(f"rolled back: {version.name} is now current ({version.path})")
    return 0
