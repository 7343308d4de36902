"""The dashboard's data: the store, the traffic log and the monitor's folder, read now, per language.

:class:`LoopSources` names the three places; :class:`LoopReader` keeps the one thing
worth keeping between page loads (the traffic log's counts of closed segments) and
:meth:`LoopReader.overview` returns an :class:`Overview` of plain dataclasses: what
the page shows, what ``/api/overview`` returns as JSON, and what tests check
without a browser.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from lingualift.adapters.store import AdapterStore
from lingualift.dashboard.lineage import Lineage, read_lineage
from lingualift.dashboard.traffic import TrafficReader, TrafficSeries
from lingualift.dashboard.windows import LoopUpdate, MonitorView, WindowStat, read_monitor
from lingualift.errors import LingualiftError
from lingualift.languages import language_name, normalize_language


@dataclasses.dataclass
class LoopSources:
    """Where the loop keeps its files."""

    store: Path
    """The adapter store (versions, cards, history.jsonl)."""
    traffic: Path | None = None
    """The server's traffic-log folder (or one log file)."""
    monitor: Path | None = None
    """The out_dir of ``lingualift monitor`` or of ``lingualift ecda``."""
    langs: list[str] | None = None
    """Only these languages (default: every language of the store, the monitor and the log)."""


@dataclasses.dataclass
class LanguageView:
    """Everything the page shows about one language."""

    lang: str
    name: str
    lineage: Lineage
    windows: list[WindowStat]
    updates: list[LoopUpdate]
    loop_state: dict[str, Any]
    """The ECDA loop's state for this language (streak, cooldown, next window, ...)."""
    monitor_summary: dict[str, Any]
    """The monitor's summary for this language (windows, drifts, queries, reference)."""
    traffic: dict[str, int]
    """Requests per adapter over the whole log."""

    @property
    def current(self) -> str | None:
        return None if self.lineage.current is None else f"{self.lang}/v{self.lineage.current}"

    @property
    def drifting_windows(self) -> int:
        return sum(w.drift for w in self.windows)


@dataclasses.dataclass
class Overview:
    """The whole loop, read at ``generated``."""

    generated: str
    store: str
    languages: list[LanguageView]
    traffic: TrafficSeries | None
    monitor: MonitorView | None
    notes: list[str]


def _code(lang: str) -> str:
    try:
        return normalize_language(lang)
    except LingualiftError:
        return lang


def _name(lang: str) -> str:
    try:
        return language_name(lang)
    except LingualiftError:
        return lang


class LoopReader:
    """Reads :class:`LoopSources` on every call to :meth:`overview` (nothing else is cached
    than the closed traffic segments' counts, which never change)."""

    def __init__(self, sources: LoopSources, max_buckets: int = 60) -> None:
        self.sources = sources
        self.store = AdapterStore(sources.store)
        self.max_buckets = max_buckets
        self._traffic = TrafficReader(sources.traffic) if sources.traffic else None

    def overview(self) -> Overview:
        notes: list[str] = []
        if not self.store.root.is_dir():
            notes.append(f"The adapter store {self.store.root} does not exist (yet).")
        traffic = self._traffic.read(self.max_buckets) if self._traffic else None
        monitor = read_monitor(self.sources.monitor) if self.sources.monitor else None
        if traffic is not None and traffic.problem:
            notes.append(f"Traffic log: {traffic.problem}.")
        if traffic is not None and traffic.malformed:
            notes.append(
                f"Traffic log: {traffic.malformed} malformed lines skipped "
                f"(first: {traffic.first_malformed})."
            )
        if monitor is not None:
            notes.extend(f"Monitor: {problem}." for problem in monitor.problems)
            notes.extend(f"Monitor: {note}." for note in monitor.summary.get("notes") or [])
        views = [
            self._language(lang, traffic, monitor) for lang in self._languages(traffic, monitor)
        ]
        return Overview(
            generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            store=str(self.store.root),
            languages=views,
            traffic=traffic,
            monitor=monitor,
            notes=notes,
        )

    def _languages(self, traffic: TrafficSeries | None, monitor: MonitorView | None) -> list[str]:
        """The store's languages and the monitored ones (a language seen only in the log, e.g.
        served by the base model, is in the traffic chart but gets no section)."""
        if self.sources.langs:
            return [_code(lang) for lang in self.sources.langs]
        found = set(self.store.languages())
        if monitor is not None:
            found |= set(monitor.languages)
        return sorted(found)

    def _language(
        self, lang: str, traffic: TrafficSeries | None, monitor: MonitorView | None
    ) -> LanguageView:
        summary = monitor.summary_languages().get(lang, {}) if monitor else {}
        return LanguageView(
            lang=lang,
            name=_name(lang),
            lineage=read_lineage(self.store, lang),
            windows=monitor.for_lang(lang) if monitor else [],
            updates=monitor.updates_of(lang) if monitor else [],
            loop_state=monitor.loop_state.get(lang, {}) if monitor else {},
            monitor_summary=summary if isinstance(summary, dict) else {},
            traffic=traffic.totals(lang) if traffic else {},
        )
