"""What the drift monitor and the ECDA loop wrote: every window's tests, and the loop's updates.

:func:`read_monitor` takes the folder of ``lingualift monitor`` (``drift.jsonl``,
``summary.json``, ``state.json``) or of ``lingualift ecda`` (the same files in
``monitor/``, and ``loop.json`` beside it). Every file there is written
atomically (a temp file renamed into place), so a read sees a whole file.
``drift.jsonl`` is rewritten before ``state.json`` (the monitor's commit point):
after a crash between the two it holds rows the state does not count yet, which
the monitor will recompute, so only the first ``n_windows`` rows the state counts
are shown.

Everything is read defensively: the loop's state is shown whatever keys a newer
loop adds (per-language values of any top-level mapping, e.g. streaks, cooldowns,
the windows a new reference was settled on), a malformed line or file is named
in ``problems`` instead of failing the page.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

DRIFT_FILE = "drift.jsonl"
STATE_FILE = "state.json"
SUMMARY_FILE = "summary.json"
LOOP_FILE = "loop.json"
TESTS = ("js", "mmd", "novelty")
TEST_NAMES = {"js": "JS divergence", "mmd": "MMD²", "novelty": "novel share"}


@dataclasses.dataclass
class TestStat:
    """One test of one window: its statistic against its threshold, its p-value against its
    Holm level."""

    name: str
    statistic: float | None
    threshold: float | None
    """The statistic's critical value at alpha/3 (None when the test has none)."""
    pvalue: float | None
    level: float | None
    """The Holm level this p-value was compared with (alpha/3, alpha/2 or alpha)."""
    rejected: bool
    detail: dict[str, Any]
    """The test's other numbers (resamples, bandwidth, novel count, radius...)."""


@dataclasses.dataclass
class WindowStat:
    """One monitored window of one language."""

    lang: str
    window: int
    reference: str | None
    """The version whose reference profile the window was tested against."""
    n: int | None
    start: str | None
    end: str | None
    tests: dict[str, TestStat]
    drift: bool
    rejected: list[str]
    first_level: float | None
    """alpha/3: the level the smallest p-value must reach for the window to drift."""
    rule: str | None
    skipped: str | None
    """Why the window was not tested (too small), None when it was."""
    grew: list[dict[str, Any]]
    """Clusters whose share grew most: ``cluster``, ``window_share``, ``reference_share``,
    ``change``, ``examples`` (queries of the window)."""
    shrank: list[dict[str, Any]]

    @property
    def anchor(self) -> str:
        return f"{self.lang}-w{self.window}"


@dataclasses.dataclass
class LoopUpdate:
    """An update the ECDA loop planned, and what became of it."""

    id: str
    lang: str
    window: int | None
    windows: list[int]
    parent: str | None
    status: str
    candidate: str | None
    current: str | None
    reason: str | None


@dataclasses.dataclass
class MonitorView:
    """The monitor's and the loop's files, read now."""

    folder: str | None
    windows: list[WindowStat]
    summary: dict[str, Any]
    updates: list[LoopUpdate]
    loop_state: dict[str, dict[str, Any]]
    """language -> loop state key -> that language's value (streak, cooldown, ...)."""
    alpha: float | None
    problems: list[str]

    def for_lang(self, lang: str) -> list[WindowStat]:
        return [w for w in self.windows if w.lang == lang]

    def updates_of(self, lang: str) -> list[LoopUpdate]:
        return [u for u in self.updates if u.lang == lang]

    @property
    def languages(self) -> list[str]:
        return sorted({w.lang for w in self.windows} | set(self.summary_languages()))

    def summary_languages(self) -> dict[str, dict[str, Any]]:
        languages = self.summary.get("languages")
        return languages if isinstance(languages, dict) else {}


def locate(folder: str | Path) -> tuple[Path, Path | None]:
    """(the monitor's folder, the loop's state file or None) of a monitor or ECDA out_dir."""
    folder = Path(folder)
    if (folder / "monitor").is_dir() and not (folder / DRIFT_FILE).exists():
        return folder / "monitor", folder / LOOP_FILE
    loop = folder / LOOP_FILE
    return folder, loop if loop.exists() else None


def _json_file(path: Path, problems: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        problems.append(f"{path} could not be read ({str(exc)[:120]})")
        return None


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def window_stat(row: dict[str, Any]) -> WindowStat:
    """A :class:`WindowStat` from one ``drift.jsonl`` row (missing fields become None)."""
    decision = row.get("decision") if isinstance(row.get("decision"), dict) else {}
    levels = decision.get("levels") if isinstance(decision.get("levels"), dict) else {}
    rejected = [str(t) for t in decision.get("rejected") or []]
    tests = {}
    for name in TESTS:
        result = row.get(name)
        if not isinstance(result, dict):
            continue
        tests[name] = TestStat(
            name=name,
            statistic=_float(result.get("statistic")),
            threshold=_float(result.get("threshold")),
            pvalue=_float(result.get("pvalue")),
            level=_float(levels.get(name)),
            rejected=name in rejected,
            detail={
                k: v for k, v in result.items() if k not in ("statistic", "threshold", "pvalue")
            },
        )
    level_values = [v for v in map(_float, levels.values()) if v is not None]
    grew = row.get("grew") if isinstance(row.get("grew"), list) else []
    shrank = row.get("shrank") if isinstance(row.get("shrank"), list) else []
    window = row.get("window")
    return WindowStat(
        lang=str(row.get("lang") or "?"),
        window=int(window) if isinstance(window, int) else -1,
        reference=row.get("reference"),
        n=row.get("n") if isinstance(row.get("n"), int) else None,
        start=row.get("start"),
        end=row.get("end"),
        tests=tests,
        drift=bool(row.get("drift", decision.get("drift"))),
        rejected=rejected,
        first_level=min(level_values) if level_values else None,
        rule=decision.get("rule"),
        skipped=decision.get("skipped"),
        grew=[g for g in grew if isinstance(g, dict)],
        shrank=[s for s in shrank if isinstance(s, dict)],
    )


def read_windows(monitor: Path, problems: list[str]) -> list[WindowStat]:
    """The windows the monitor's state counts (all of ``drift.jsonl`` without a state)."""
    path = monitor / DRIFT_FILE
    if not path.is_file():
        return []
    state = _json_file(monitor / STATE_FILE, problems)
    counted = state.get("n_windows") if isinstance(state, dict) else None
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path} could not be read ({str(exc)[:120]})")
        return []
    if isinstance(counted, int):
        lines = lines[:counted]
    windows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number} is not a drift row ({exc.msg})")
            continue
        if isinstance(row, dict):
            windows.append(window_stat(row))
    return windows


def loop_update(entry: dict[str, Any]) -> LoopUpdate:
    windows = entry.get("windows") if isinstance(entry.get("windows"), list) else []
    return LoopUpdate(
        id=str(entry.get("id") or "?"),
        lang=str(entry.get("lang") or "?"),
        window=entry.get("window") if isinstance(entry.get("window"), int) else None,
        windows=[w for w in windows if isinstance(w, int)],
        parent=entry.get("parent"),
        status=str(entry.get("status") or "?"),
        candidate=entry.get("candidate"),
        current=entry.get("current"),
        reason=entry.get("reason"),
    )


def read_loop(
    path: Path | None, problems: list[str]
) -> tuple[list[LoopUpdate], dict[str, dict[str, Any]], dict[str, Any]]:
    """The loop's updates, its per-language state, and its settings (empty without a loop)."""
    state = _json_file(path, problems) if path is not None else None
    if not isinstance(state, dict):
        return [], {}, {}
    updates = state.get("updates") if isinstance(state.get("updates"), list) else []
    per_lang: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        if key in ("format", "settings", "updates") or not isinstance(value, dict):
            continue
        for lang, item in value.items():
            per_lang.setdefault(str(lang), {})[key] = item
    settings = state.get("settings") if isinstance(state.get("settings"), dict) else {}
    return [loop_update(u) for u in updates if isinstance(u, dict)], per_lang, settings


def read_monitor(folder: str | Path) -> MonitorView:
    """The monitor's and the loop's files under ``folder`` (see the module docstring)."""
    monitor, loop_path = locate(folder)
    problems: list[str] = []
    if not monitor.is_dir():
        problems.append(f"{monitor} does not exist (yet)")
    windows = read_windows(monitor, problems)
    summary = _json_file(monitor / SUMMARY_FILE, problems)
    updates, loop_state, loop_settings = read_loop(loop_path, problems)
    state = _json_file(monitor / STATE_FILE, [])  # its problems are named once, above
    settings = state.get("settings") if isinstance(state, dict) else None
    alpha = _float((settings or loop_settings or {}).get("alpha"))
    if alpha is None:  # Holm's largest level is alpha itself
        levels = [t.level for w in windows for t in w.tests.values() if t.level is not None]
        alpha = max(levels, default=None)
    return MonitorView(
        folder=str(monitor),
        windows=windows,
        summary=summary if isinstance(summary, dict) else {},
        updates=updates,
        loop_state=loop_state,
        alpha=alpha,
        problems=problems,
    )
