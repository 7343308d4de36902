"""``lingualift info``: versions, embedded assets and cache contents."""

from __future__ import annotations

import argparse
from typing import Any

from lingualift.cli._common import add_verb, print_json


def register(subparsers: Any) -> None:
    parser = add_verb(subparsers, "info", "show versions, embedded assets and cache contents", run)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    from lingualift.assets import info

    report = info()
    if args.json:
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
