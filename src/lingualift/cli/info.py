"""``lingualift info``: versions, embedded assets and cache contents."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from lingualift.cli._common import Flag, add_verb, config_from_args, print_json
from lingualift.cli.verbs import Verb


@dataclasses.dataclass
class InfoConfig:
    """Settings of ``lingualift info``."""

    json: bool = False
    """Print machine-readable JSON."""


def register(subparsers: Any, verb: Verb) -> None:
    add_verb(
        subparsers,
        verb.name,
        verb.help,
        run,
        config_cls=InfoConfig,
        flags=[Flag(("--json",), "json", switch=True)],
    )


def run(args: argparse.Namespace) -> int:
    from lingualift.assets import info

    config = config_from_args(args)
    report = info()
    if config.json:
        print_json(report)
        return 0
    print("versions:")
    for name, version in report["versions"].items():
        print(f"  {name:<26} {version}")
    print("embedded assets:")
    for asset in report["embedded_assets"]:
        mark = "ok " if asset["available"] else "-- "
        print(f"  {mark}{asset['asset']}: {asset['status']}")
    cache = report["cache"]
    print(f"cache: {cache['home']} ({cache['size_mb']} MB)")
    print(f"  models: {', '.join(cache['models']) or 'none yet'}")
    for encoder, count in cache["embeddings"].items() or {"none yet": 0}.items():
        print(f"  embeddings {encoder}: {count}")
    return 0
