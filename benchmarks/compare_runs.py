"""Do two run folders hold the same numbers? For checking that a refactor changed no result.

Compares every ``*.json`` and ``*.jsonl`` file under folder A with the file of the same
path under folder B, value by value, and prints each difference. Left out, because they
differ between two identical runs: wall-clock timings, load averages, creation times,
absolute paths, stage fingerprints and stage/job/state bookkeeping files (``stage.json``,
``job.json``, ``state.json``, ``loop.json``, ``card.json``), and the order of PEFT's
``target_modules`` (a set). Exit code 0 when nothing differs, 1 otherwise.

    # the same quickstart before and after a change (e.g. main and a branch):
    PYTHONPATH=<before>/src python -m lingualift.cli quickstart out_dir=/tmp/qs-before
    PYTHONPATH=<after>/src  python -m lingualift.cli quickstart out_dir=/tmp/qs-after
    python benchmarks/compare_runs.py /tmp/qs-before /tmp/qs-after
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SKIPPED_KEYS = {
    "seconds", "train_seconds", "tokens_per_s", "finished", "fingerprint", "created", "path",
    "run", "out_dir", "run_dir", "config", "software", "stages", "timings", "machine", "time",
}  # fmt: skip
SKIPPED_FILES = {"stage.json", "job.json", "state.json", "loop.json", "card.json"}


def differences(a: Any, b: Any, where: str, roots: tuple[str, str]) -> list[str]:
    """Readable ``where: a != b`` lines between two decoded JSON values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            if key in SKIPPED_KEYS or "second" in str(key):
                continue
            if key not in a or key not in b:
                out.append(f"{where}.{key}: only in {'A' if key in a else 'B'}")
            elif key == "target_modules" and isinstance(a[key], list):
                out += differences(sorted(a[key]), sorted(b[key]), f"{where}.{key}", roots)
            else:
                out += differences(a[key], b[key], f"{where}.{key}", roots)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, f"{where}[{i}]", roots)]
    if isinstance(a, str) and isinstance(b, str) and (roots[0] in a or roots[1] in b):
        return []  # a path inside the run folder
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def read(path: Path) -> Any:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return json.loads(path.read_text("utf-8"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args()
    roots = (str(args.a.resolve()), str(args.b.resolve()))
    found: list[str] = []
    compared = 0
    for path in sorted([*args.a.rglob("*.json"), *args.a.rglob("*.jsonl")]):
        rel = path.relative_to(args.a)
        if rel.name in SKIPPED_FILES or any(part.startswith(".") for part in rel.parts):
            continue
        other = args.b / rel
        if not other.is_file():
            found.append(f"{rel}: missing in B")
            continue
        compared += 1
        found += differences(read(path), read(other), str(rel), roots)
    print(f"compared {compared} files: {len(found)} differences")
    for line in found[:100]:
        print(f"  {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
