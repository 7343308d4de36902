"""The one resumable stage engine every job runs on.

A job is a folder of named **stages**. Each stage is a function that writes its
outputs into a folder and returns a small JSON-able result. The engine gives
every stage the same three guarantees:

- **atomic**: the function writes into a temp folder that replaces the stage's
  folder in one rename, with ``stage.json`` (fingerprint, settings, result,
  seconds) inside it, so a stage is either finished or absent;
- **fingerprinted**: the fingerprint covers the stage's settings (data hashes
  included) and the fingerprints of the stages it reads; a finished stage with
  the same fingerprint is reused, and one made with other settings is refused
  by one message that names what differs (``overwrite=True`` redoes it);
- **resumable**: a stage that can be interrupted (training) keeps its partial
  work in ``ctx.work`` (``.<stage>.work/`` beside the stage folder), which
  survives a crash, is wiped when the settings change and removed once the
  stage lands (or fails with nothing in it to resume from: no lock file or
  empty work folder outlives a stage refused on bad input).

Reusing a finished stage costs one small JSON read, so a rerun of a finished
job takes seconds, and a job interrupted anywhere resumes at the stage (and,
inside training, the checkpoint) where it stopped::

    job = Job("runs/quickstart", label="quickstart", total=3)
    data = job.run("data", {"lang": "sw", "seed": 0}, write_data)
    select = job.run("select", {"budget": 300}, run_selection, after=[data])
    select.result["js_after"], select.path / "selection.parquet"
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lingualift.atomic import atomic_dir, atomic_write_text, check_replaceable, exclusive
from lingualift.errors import LingualiftError

STAGE_FILE = "stage.json"
JOB_FILE = "job.json"
FORMAT = "lingualift-stage/1"
WORK_STAMP = ".fingerprint"
"""The file in a work folder naming the fingerprint its partial work belongs to."""


@dataclasses.dataclass
class StageContext:
    """What a stage function gets."""

    name: str
    out: Path
    """Temp folder: everything written here becomes the stage's folder on success."""
    work: Path
    """Persistent scratch for partial work (checkpoints); kept across crashes, removed on success."""
    settings: dict[str, Any]
    fingerprint: str


@dataclasses.dataclass
class Stage:
    """A finished stage."""

    name: str
    path: Path
    fingerprint: str
    result: dict[str, Any]
    seconds: float
    reused: bool = False
    """True when this run found it finished and did not run it."""


def fingerprint_of(settings: Mapping[str, Any], after: Sequence[Stage] = ()) -> str:
    """sha256 of the settings (as canonical JSON) and of the upstream stages' fingerprints."""
    blob = json.dumps(
        {"settings": settings, "after": {s.name: s.fingerprint for s in after}},
        sort_keys=True,
        default=str,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def read_stage(path: str | Path) -> dict[str, Any] | None:
    """The ``stage.json`` of a stage folder (None when the folder holds no finished stage)."""
    marker = Path(path) / STAGE_FILE
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def describe_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Readable ``key: old -> new`` lines between two settings mappings."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            out += describe_differences(old.get(key, "<unset>"), new.get(key, "<unset>"), name)
        return out
    if json.dumps(old, sort_keys=True, default=str) == json.dumps(new, sort_keys=True, default=str):
        return []
    shorten = lambda v: s if len(s := json.dumps(v, default=str)) <= 40 else s[:37] + "..."  # noqa: E731
    return [f"{prefix or 'settings'}: {shorten(old)} -> {shorten(new)}"]


@contextlib.contextmanager
def _work_kept_only_with_progress(work: Path) -> Iterator[None]:
    """On a failure inside, remove the work folder if it holds nothing to resume from.

    A stage refused on bad input (or killed before its first checkpoint) leaves only
    the fingerprint stamp there; any other file is partial work a rerun resumes.
    """
    try:
        yield
    except BaseException:
        stamp = work / WORK_STAMP
        if work.is_dir() and not any(p != stamp and not p.is_dir() for p in work.rglob("*")):
            shutil.rmtree(work, ignore_errors=True)
        raise


class Job:
    """A folder of stages (see the module docstring)."""

    def __init__(
        self,
        root: str | Path,
        *,
        label: str = "job",
        overwrite: bool = False,
        total: int | None = None,
        quiet: bool = False,
        main_process: bool = True,
        barrier: Callable[[], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.label = label
        self.overwrite = overwrite
        self.total = total
        self.quiet = quiet or not main_process
        # Under `accelerate launch` every process runs the job; only the main one writes
        # stages, and ``barrier`` keeps the others from reading its work folder too early.
        self.main_process = main_process
        self.barrier = barrier or (lambda: None)
        self.stages: dict[str, Stage] = {}
        self._count = 0

    def claim(self) -> None:
        """Make the root this job's own folder, refusing a foreign non-empty one.

        For jobs whose root holds only their stages (the quickstart, an experiment);
        a job that writes one stage into a shared folder (``runs/``) does not claim it.
        """
        marker = self.root / JOB_FILE
        check_replaceable(self.root, JOB_FILE, self.overwrite, what=f"{self.label} output")
        if self.main_process and not marker.is_file():
            atomic_write_text(marker, json.dumps({"format": FORMAT, "job": self.label}) + "\n")

    def announce(self, name: str, text: str) -> None:
        """Count and print a step that is not a stage (e.g. writing the report)."""
        self._count += 1
        self._say(name, text)

    def _say(self, name: str, text: str) -> None:
        if self.quiet:
            return
        count = f" {self._count}/{self.total}" if self.total else ""
        print(f"[{self.label}{count}] {name}: {text}", file=sys.stderr, flush=True)

    def run(
        self,
        name: str,
        settings: Mapping[str, Any],
        fn: Callable[[StageContext], dict[str, Any] | None],
        *,
        after: Sequence[Stage] = (),
        path: str | Path | None = None,
        describe: str = "running",
    ) -> Stage:
        """Run stage ``name`` unless it finished earlier with the same fingerprint."""
        self._count += 1
        path = Path(path) if path is not None else self.root / name
        settings = json.loads(json.dumps(dict(settings), default=str))  # what stage.json will hold
        fp = fingerprint_of(settings, after)
        found = read_stage(path)
        if found is not None and found.get("fingerprint") == fp:
            stage = Stage(
                name, path, fp, found.get("result") or {}, found.get("seconds", 0.0), True
            )
            self._say(name, "finished earlier, reused")
            self.stages[name] = stage
            return stage
        if found is not None and not self.overwrite:
            diffs = describe_differences(found.get("settings"), settings)
            if not diffs:
                diffs = [f"an earlier stage it reads changed ({', '.join(s.name for s in after)})"]
            raise LingualiftError(
                f"{path} was made with other settings ({'; '.join(diffs[:4])}); use another "
                "output folder or pass overwrite=true to redo it."
            )
        if found is None:
            check_replaceable(path, STAGE_FILE, self.overwrite, what=f"{self.label} output")
        work = path.with_name(f".{path.name}.work")
        if not self.main_process:
            self.barrier()  # the main process has prepared the work folder
            with tempfile.TemporaryDirectory() as scratch:
                result = fn(StageContext(name, Path(scratch), work, settings, fp)) or {}
            self.barrier()
            stage = Stage(name, path, fp, result, 0.0)
            self.stages[name] = stage
            return stage
        # Whatever happens, no lock file is left, nor a work folder without progress.
        with exclusive(path), _work_kept_only_with_progress(work):
            self._prepare_work(work, fp)
            self.barrier()
            self._say(name, describe)
            began = time.perf_counter()
            with atomic_dir(path, overwrite=True) as tmp:
                ctx = StageContext(name, tmp, work, settings, fp)
                result = fn(ctx) or {}
                seconds = round(time.perf_counter() - began, 2)
                marker = {
                    "format": FORMAT,
                    "job": self.label,
                    "stage": name,
                    "fingerprint": fp,
                    "after": {s.name: s.fingerprint for s in after},
                    "settings": settings,
                    "result": result,
                    "seconds": seconds,
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                (tmp / STAGE_FILE).write_text(
                    json.dumps(marker, indent=2, ensure_ascii=False, default=str) + "\n",
                    encoding="utf-8",
                )
            shutil.rmtree(work, ignore_errors=True)
            self.barrier()
        result = json.loads(json.dumps(result, default=str))
        self._say(name, f"done in {seconds:.1f} s")
        stage = Stage(name, path, fp, result, seconds)
        self.stages[name] = stage
        return stage

    @staticmethod
    def _prepare_work(work: Path, fp: str) -> None:
        """Keep partial work made with the same fingerprint; start afresh otherwise."""
        stamp = work / WORK_STAMP
        if work.exists() and (not stamp.is_file() or stamp.read_text().strip() != fp):
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stamp, fp + "\n")

    def finished(self, name: str, path: str | Path | None = None) -> Stage | None:
        """A stage that finished in an earlier run, read without running anything."""
        path = Path(path) if path is not None else self.root / name
        found = read_stage(path)
        if found is None:
            return None
        return Stage(
            name,
            path,
            found["fingerprint"],
            found.get("result") or {},
            found.get("seconds", 0.0),
            True,
        )
