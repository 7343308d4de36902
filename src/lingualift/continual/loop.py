"""The ECDA loop: drifting windows become planned updates, carried out one by one; its own state.

:class:`EcdaLoop` watches the reports a :class:`~lingualift.continual.log_monitor.LogMonitor`
produces. When ``trigger_windows`` consecutive windows of a language drift
(outside a cooldown), it plans an update (:class:`PlannedUpdate`): the drifted
windows among the monitor's last ones become the new target usage, and the
windows' statistics its evidence. It saves the plan in its own state file
*before* the monitor saves its cursor, and asks the monitor to pause there.
:meth:`EcdaLoop.settle` then carries out every pending update through an
:class:`Updater` (select -> train -> gate -> decide, see
:mod:`lingualift.workflows.ecda_update`) and tells the monitor what changed:
after a promotion the next windows are tested against the new version's
reference; after a kept candidate the recent windows are forgotten and the
language waits ``cooldown_windows``.

The loop talks to the monitor only through its public methods (``poll``,
``recent_usage``, ``window_rows``, ``windows_closed``, ``set_reference``,
``reset_recent``, ``save``). Its state (``loop.json``: planned updates and
their outcome, drift streaks, cooldowns, the last window seen per language)
is plain JSON written atomically. Crash safety:

- a plan is saved before the monitor saves past its window; a window the
  loop has already seen (the monitor re-reads it after a crash) is not
  counted again;
- an outcome is applied to the monitor and saved there before the loop marks
  the update finished, and applying it twice changes nothing, so a crash
  between the two repeats only the (idempotent) last step: the update's
  stages are reused and its decision is not taken twice.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from pathlib import Path
from typing import Any, Literal, Protocol

from lingualift.adapters.store import AdapterStore
from lingualift.atomic import atomic_write_text
from lingualift.continual.deployed import load_reference
from lingualift.continual.log_monitor import LogMonitor
from lingualift.continual.monitor import WindowReport
from lingualift.continual.reference import SMALL_REFERENCE
from lingualift.continual.watch import poll_repeatedly
from lingualift.errors import LingualiftError, require
from lingualift.stages import describe_differences

LOOP_FILE = "loop.json"
LOOP_FORMAT = "lingualift-ecda-loop/1"
TESTS = ("js", "mmd", "novelty")


@dataclasses.dataclass
class LoopSettings:
    """When drift starts an update, and how long a kept update holds off the next one."""

    trigger_windows: int = 1
    """Consecutive drifting windows of a language that start an update."""
    usage_windows: int = 3
    """Recent windows kept; the drifted ones among them become the new target usage."""
    cooldown_windows: int = 2
    """Windows to wait after a kept (not promoted) update before another can start."""
    settle_rows: int = SMALL_REFERENCE
    """After a promotion, queries of the next windows the new version's reference is built
    from; those windows are not tested (800: below it a reference's own noise raised false
    alarms, docs/continual.md). 0: test at once against the update's provisional reference."""

    def __post_init__(self) -> None:
        require(self.trigger_windows >= 1, "trigger_windows must be at least 1.")
        require(
            self.usage_windows >= self.trigger_windows,
            "usage_windows must be at least trigger_windows.",
        )
        require(self.cooldown_windows >= 0, "cooldown_windows must not be negative.")
        require(self.settle_rows >= 0, "settle_rows must not be negative.")


@dataclasses.dataclass
class PlannedUpdate:
    """An update the loop owes: planned on a drifting window, then promoted or kept."""

    id: str
    """``<lang>-w<window>``: also the update's folder name."""
    lang: str
    window: int
    """The window that triggered it."""
    windows: list[int]
    """The drifted windows whose queries are the new target usage."""
    parent: str
    """The version that was current when it was planned (the update starts from it)."""
    texts: list[str]
    """The queries of ``windows`` (dropped once the update is finished)."""
    evidence: list[dict[str, Any]]
    """Per window: size, drift, p-values, statistics, rejected tests, grown clusters."""
    status: Literal["pending", "promoted", "kept"] = "pending"
    candidate: str | None = None
    current: str | None = None
    reason: str | None = None

    def summary(self) -> dict[str, Any]:
        """What a report shows: everything but the queries and the evidence."""
        keys = ("id", "lang", "window", "windows", "parent", "status")
        out = {k: getattr(self, k) for k in keys}
        if self.status != "pending":
            out.update(candidate=self.candidate, current=self.current, reason=self.reason)
        return out


@dataclasses.dataclass
class UpdateOutcome:
    """What carrying out an update decided."""

    status: Literal["promoted", "kept"]
    candidate: str
    """The version trained for it (e.g. ``sw/v3``)."""
    current: str
    """The current version after the decision."""
    reason: str
    """The gate's reason, in words."""


class Updater(Protocol):
    """Carries out one planned update (idempotently: a rerun reuses what finished)."""

    def __call__(self, update: PlannedUpdate) -> UpdateOutcome: ...


def window_evidence(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The statistics of drift rows that an update's decision records as its evidence."""
    return [
        {
            "window": r["window"],
            "n": r["n"],
            "drift": r["drift"],
            "pvalues": {k: r[k]["pvalue"] for k in TESTS if k in r},
            "statistics": {k: r[k]["statistic"] for k in TESTS if k in r},
            "rejected": r["decision"].get("rejected", []),
            "grew": [{k: g[k] for k in ("cluster", "change")} for g in r["grew"]],
        }
        for r in rows
    ]


class EcdaLoop:
    """Plans updates from window reports and has them carried out (see the module docstring).

    Args:
        path: the loop's state file (``loop.json``).
        settings: trigger, usage and cooldown windows.
        store: the adapter store (to name the parent version and load a promoted
            version's reference).
        fingerprint: what a resumed state must have been made with (the caller's settings).
        progress: print a line per planned update.
    """

    def __init__(
        self,
        path: str | Path,
        settings: LoopSettings,
        store: AdapterStore,
        fingerprint: dict[str, Any],
        *,
        progress: bool = True,
    ) -> None:
        self.path = Path(path)
        self.settings = settings
        self.store = store
        self.fingerprint = fingerprint
        self.progress = progress
        self._updates: list[PlannedUpdate] = []
        self._streak: dict[str, int] = {}
        self._cooldown: dict[str, int] = {}
        self._next_window: dict[str, int] = {}

    @classmethod
    def open(
        cls,
        path: str | Path,
        settings: LoopSettings,
        store: AdapterStore,
        fingerprint: dict[str, Any],
        *,
        overwrite: bool = False,
        progress: bool = True,
    ) -> EcdaLoop:
        """A loop that continues from the state at ``path`` (a new one when there is none).

        A state made with another fingerprint is refused unless ``overwrite`` (then
        the loop starts afresh, as the monitor does); a damaged one is refused.
        """
        loop = cls(path, settings, store, fingerprint, progress=progress)
        if not loop.path.is_file():
            return loop
        try:
            state = json.loads(loop.path.read_text("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise loop._damaged(str(exc)) from None
        if not isinstance(state, dict) or state.get("format") != LOOP_FORMAT:
            raise LingualiftError(f"{loop.path} is not an ECDA loop state; use a new out_dir.")
        if state.get("settings") != fingerprint:
            if overwrite:
                return loop
            diffs = describe_differences(state.get("settings"), fingerprint)
            raise LingualiftError(
                f"{loop.path.parent} was run with other settings ({'; '.join(diffs[:3])}); use "
                "another out_dir or pass overwrite=true to start afresh."
            )
        loop.restore(state)
        return loop

    def _damaged(self, why: str) -> LingualiftError:
        return LingualiftError(
            f"{self.path} is damaged ({why}); delete it and the monitor's state to start afresh, "
            "or use another out_dir."
        )

    # -- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "format": LOOP_FORMAT,
            "settings": self.fingerprint,
            "updates": [dataclasses.asdict(u) for u in self._updates],
            "streak": self._streak,
            "cooldown": self._cooldown,
            "next_window": self._next_window,
        }

    def restore(self, state: dict[str, Any]) -> None:
        try:
            updates = [PlannedUpdate(**u) for u in state["updates"]]
            streak = {str(k): int(v) for k, v in state["streak"].items()}
            cooldown = {str(k): int(v) for k, v in state["cooldown"].items()}
            seen = {str(k): int(v) for k, v in state["next_window"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._damaged(f"{type(exc).__name__}: {exc}") from None
        self._updates, self._streak, self._cooldown, self._next_window = (
            updates, streak, cooldown, seen
        )  # fmt: skip

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.state(), ensure_ascii=False) + "\n")

    @property
    def updates(self) -> list[dict[str, Any]]:
        """Every update of this loop, oldest first (:meth:`PlannedUpdate.summary`)."""
        return [u.summary() for u in self._updates]

    def _say(self, text: str) -> None:
        if self.progress:
            print(f"[ecda] {text}", file=sys.stderr, flush=True)

    # -- planning --------------------------------------------------------------------------

    def plan(self, monitor: LogMonitor, reports: list[WindowReport]) -> bool:
        """Record the updates these reports trigger; True asks the monitor to pause for them.

        Saved before returning, so before the monitor saves past these windows.
        """
        planned = False
        for report in reports:
            lang = report.lang
            if report.index < self._next_window.get(lang, 0):
                continue  # counted before a crash; the monitor read it again
            self._next_window[lang] = report.index + 1
            if report.decision.get("skipped"):
                continue
            streak = self._streak.get(lang, 0) + 1 if report.drift else 0
            self._streak[lang] = streak
            if streak < self.settings.trigger_windows:
                continue
            if report.index < self._cooldown.get(lang, 0):
                continue
            windows = monitor.recent_usage(lang)
            indices = [w["index"] for w in windows]
            update = PlannedUpdate(
                id=f"{lang}-w{report.index:05d}",
                lang=lang,
                window=report.index,
                windows=indices,
                parent=self.store.get(lang).name,
                texts=[t for w in windows for t in w["texts"]],
                evidence=window_evidence(monitor.window_rows(lang, indices)),
            )
            self._updates.append(update)
            self._streak[lang] = 0
            planned = True
            self._say(f"{lang}: drift in window {report.index}, update {update.id} planned")
        if reports:
            self.save()
        return planned

    # -- carrying out ----------------------------------------------------------------------

    def settle(self, monitor: LogMonitor, updater: Updater) -> None:
        """Carry out every pending update, oldest first; the monitor learns each outcome."""
        for update in self._updates:
            if update.status != "pending":
                continue
            outcome = updater(update)
            lang = update.lang
            if outcome.status == "promoted":
                reference = load_reference(self.store, lang)
                if self.settings.settle_rows:
                    folder = self.store.get(lang).path
                    monitor.settle_reference(lang, reference, folder, self.settings.settle_rows)
                else:
                    monitor.set_reference(lang, reference)
            else:
                monitor.reset_recent(lang)
                # Counted from the windows the loop has seen: after a crash between a plan
                # and the monitor's save, the monitor is behind and reads them again.
                seen = max(self._next_window.get(lang, 0), monitor.windows_closed(lang))
                self._cooldown[lang] = seen + self.settings.cooldown_windows
            monitor.save()  # first the monitor: applying an outcome twice changes nothing
            update.status, update.candidate = outcome.status, outcome.candidate
            update.current, update.reason = outcome.current, outcome.reason
            update.texts = []
            self.save()

    def run(
        self,
        monitor: LogMonitor,
        updater: Updater,
        *,
        follow: bool = False,
        poll_seconds: float = 60.0,
        max_polls: int | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Finish what a crash interrupted, then read the log once, or follow it.

        ``follow``: poll every ``poll_seconds`` until ``max_polls`` reads, ``stop`` is
        set (between two polls) or Ctrl-C while waiting for the next poll.
        """
        self.settle(monitor, updater)  # an update a crash interrupted

        def read() -> None:
            while True:
                monitor.poll(
                    on_reports=lambda reports: self.plan(monitor, reports), final=not follow
                )
                self.settle(monitor, updater)
                if not monitor.paused:  # paused: an update ran mid-log; read on against it
                    break
            if monitor.report_stale:  # an idle poll of a followed folder redraws nothing
                monitor.write_report()

        stopped = poll_repeatedly(
            read, follow=follow, poll_seconds=poll_seconds, max_polls=max_polls, stop=stop
        )
        if stopped:
            self._say("stopped following the log")
