"""``lingualift adapters list|show|promote|rollback``: inspect and switch stored adapters."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, print_json


def register(subparsers: Any) -> None:
    parser = add_verb(
        subparsers,
        "adapters",
        "list, show, promote or roll back stored language adapters",
        run,
        description="Manage the adapter store (<store>/<lang>/v<N>/ PEFT folders with card.json "
        "and a current pointer per language).",
    )
    parser.add_argument("--store", help="store root (default $LINGUALIFT_HOME/adapters)")
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    listing = actions.add_parser("list", help="every version, current ones marked")
    listing.add_argument("lang", nargs="?", help="only this language")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = actions.add_parser("show", help="print a version's card")
    show.add_argument("lang")
    show.add_argument("version", nargs="?", help="v<N> or N (default: current)")
    promote = actions.add_parser("promote", help="make a version the current one")
    promote.add_argument("lang")
    promote.add_argument("version", help="v<N> or N")
    rollback = actions.add_parser("rollback", help="go back to the previous current version")
    rollback.add_argument("lang")


def run(args: argparse.Namespace) -> int:
    from lingualift.adapters.store import AdapterStore

    store = AdapterStore(args.store)
    if args.action == "list":
        rows = [v.summary() for v in store.list(args.lang)]
        if args.json:
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
        version = store.get(args.lang, args.version)
        print_json({"path": str(version.path), "current": version.current, **version.card})
    elif args.action == "promote":
        version = store.promote(args.lang, args.version)
        print(f"{version.name} is now current ({version.path})")
    elif args.action == "rollback":
        version = store.rollback(args.lang)
        print(f"rolled back: {version.name} is now current ({version.path})")
    return 0
