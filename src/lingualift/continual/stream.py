"""A stream of production queries cut into windows per language, each tested by its DriftMonitor.

:class:`StreamMonitor` routes every query to a language (the one the log
names, else language identification; below the identifier's confidence the
query is skipped and counted as ``unsure``), keeps a pending window per
language, and when a window closes embeds its texts (through the embedding
cache; ``backend='ray'`` sends the misses to Ray Data) and hands it to that
language's :class:`~lingualift.continual.monitor.DriftMonitor`.

Windows close by count (every ``window`` queries) or by time
(``window_seconds``: windows aligned to multiples of it in UTC; a window
closes when a later query of its language arrives, or at :meth:`flush`; a
query older than the open window is counted ``late`` and dropped). A time
window with fewer queries than the statistics need is reported as skipped.

A language can be **held** (:meth:`StreamMonitor.hold`): its windows still
close, but are not embedded or tested; each is reported as skipped with the
hold's reason and its queries (``decision["held"]``), until
:meth:`StreamMonitor.set_reference` gives the language its next reference
(after a promotion, the new version's reference grows from such windows).

Everything needed to continue later (pending queries, window numbers, the
last windows' texts for an update, counters) is in :meth:`state`, plain JSON.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from lingualift.compass.embedding import Backend, EmbeddedSet, embed_texts
from lingualift.continual.logs import Query, format_ts
from lingualift.continual.monitor import DriftMonitor, WindowReport
from lingualift.embed import Encoder
from lingualift.errors import LingualiftError, require
from lingualift.langid import LanguageIdentifier
from lingualift.languages import normalize_language

COUNTERS = ("rows", "no_text", "unsure", "other_language", "no_ts", "late", "too_small", "held")


class StreamMonitor:
    """Route, window, embed and test a stream of queries (see the module docstring)."""

    def __init__(
        self,
        monitors: dict[str, DriftMonitor],
        encoder: str | Encoder,
        *,
        window: int = 200,
        window_seconds: float | None = None,
        identifier: LanguageIdentifier | None = None,
        backend: Backend = "local",
        keep_recent: int = 3,
    ) -> None:
        require(monitors, "Monitor at least one language.")
        require(window_seconds is None or window_seconds > 0, "window_seconds must be positive.")
        if window_seconds is None:
            for lang, monitor in monitors.items():
                if window < monitor.min_window:
                    raise LingualiftError(
                        f"window={window} is smaller than the statistics need: at least "
                        f"{monitor.min_window} queries per window for "
                        f"{monitor.reference.version or lang}'s reference "
                        f"({monitor.reference.n_clusters} clusters); raise window."
                    )
        self.monitors = monitors
        self.encoder = encoder
        self.window = window
        self.window_seconds = window_seconds
        self.identifier = identifier or LanguageIdentifier()
        self.backend = backend
        self.keep_recent = keep_recent
        self.pending: dict[str, list[Query]] = {lang: [] for lang in monitors}
        self.keys: dict[str, int | None] = dict.fromkeys(monitors)
        self.index: dict[str, int] = dict.fromkeys(monitors, 0)
        self.recent: dict[str, deque[dict[str, Any]]] = {
            lang: deque(maxlen=keep_recent) for lang in monitors
        }
        self.counts: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self.routed: Counter[str] = Counter()
        self.held: dict[str, str] = {}
        """Languages whose windows close untested, with the reason their reports give."""

    # -- routing ---------------------------------------------------------------------------

    def route(self, query: Query) -> str | None:
        """The monitored language of ``query`` (None: counted and skipped)."""
        self.counts["rows"] += 1
        if query.text is None:
            self.counts["no_text"] += 1
            return None
        lang = None
        if query.lang:
            try:
                lang = normalize_language(query.lang)
            except LingualiftError:
                lang = None
        if lang is None:
            lang = self.identifier.identify(query.text).lang
            if lang is None:
                self.counts["unsure"] += 1
                return None
        if lang not in self.monitors:
            self.counts["other_language"] += 1
            return None
        self.routed[lang] += 1
        return lang

    # -- windows ---------------------------------------------------------------------------

    def feed(self, queries: Iterable[Query]) -> list[WindowReport]:
        """Take queries in order; returns the reports of every window they closed."""
        reports: list[WindowReport] = []
        for query in queries:
            lang = self.route(query)
            if lang is None:
                continue
            if self.window_seconds is None:
                self.pending[lang].append(query)
                if len(self.pending[lang]) >= self.window:
                    reports.append(self._close(lang))
                continue
            if query.ts is None:
                self.counts["no_ts"] += 1
                continue
            key = math.floor(query.ts / self.window_seconds)
            current = self.keys[lang]
            if current is not None and key < current:
                self.counts["late"] += 1
                continue
            if current is not None and key > current and self.pending[lang]:
                reports.append(self._close(lang))
            self.keys[lang] = key
            self.pending[lang].append(query)
        return reports

    def flush(self) -> list[WindowReport]:
        """Close every open window that holds queries (the end of a finished stream)."""
        return [self._close(lang) for lang in self.monitors if self.pending[lang]]

    def _bounds(self, lang: str, queries: list[Query]) -> dict[str, Any]:
        times = [q.ts for q in queries if q.ts is not None]
        if self.window_seconds is not None and self.keys[lang] is not None:
            start = self.keys[lang] * self.window_seconds
            start_end = (format_ts(start), format_ts(start + self.window_seconds))
        else:
            start_end = (format_ts(min(times)) if times else None,
                         format_ts(max(times)) if times else None)  # fmt: skip
        return {
            "start": start_end[0],
            "end": start_end[1],
            "first": queries[0].where,
            "last": queries[-1].where,
        }

    def _close(self, lang: str) -> WindowReport:
        queries, self.pending[lang] = self.pending[lang], []
        monitor = self.monitors[lang]
        index = self.index[lang]
        self.index[lang] = index + 1
        bounds = self._bounds(lang, queries)
        texts = [q.text or "" for q in queries]
        if lang in self.held:
            self.counts["held"] += 1
            decision = {"drift": False, "skipped": self.held[lang], "held": True}
            return WindowReport(
                lang, index, len(queries), {}, decision, [], [], monitor.reference.version,
                bounds, texts,
            )  # fmt: skip
        if len(queries) < monitor.min_window:
            self.counts["too_small"] += 1
            reason = (
                f"only {len(queries)} queries; the statistics need at least {monitor.min_window}"
            )
            return WindowReport(
                lang, index, len(queries), {}, {"drift": False, "skipped": reason}, [], [],
                monitor.reference.version, bounds, texts,
            )  # fmt: skip
        vectors, name = embed_texts(texts, self.encoder, self.backend, progress=False)
        window = EmbeddedSet(vectors, name)
        report = monitor.update(window, index=index, texts=texts, bounds=bounds)
        self.recent[lang].append(
            {"index": index, "drift": report.drift, "texts": texts,
             "ids": [q.id for q in queries]}
        )  # fmt: skip
        return report

    def recent_usage(self, lang: str, drifted_only: bool = True) -> list[dict[str, Any]]:
        """The last windows of ``lang`` (those that drifted, by default), oldest first."""
        return [w for w in self.recent[lang] if w["drift"] or not drifted_only]

    def set_reference(self, lang: str, monitor: DriftMonitor) -> None:
        """Compare ``lang``'s next windows with another reference (after a promotion); ends a
        hold."""
        self.monitors[lang] = monitor
        self.recent[lang].clear()
        self.held.pop(lang, None)

    def hold(self, lang: str, reason: str) -> None:
        """Close ``lang``'s next windows untested (reported as skipped with ``reason``, their
        queries kept in the report) until :meth:`set_reference`."""
        require(lang in self.monitors, f"{lang!r} is not a monitored language.")
        self.held[lang] = reason
        self.recent[lang].clear()

    def reset_recent(self, lang: str) -> None:
        """Forget ``lang``'s last windows (their queries have been acted on)."""
        self.recent[lang].clear()

    def windows_closed(self, lang: str) -> int:
        """How many windows of ``lang`` have closed (the next window's number)."""
        return self.index[lang]

    # -- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "pending": {lang: [q.to_state() for q in rows] for lang, rows in self.pending.items()},
            "keys": self.keys,
            "index": self.index,
            "recent": {lang: list(rows) for lang, rows in self.recent.items()},
            "counts": dict(self.counts),
            "routed": dict(self.routed),
            "held": self.held,
        }

    def restore(self, state: dict[str, Any]) -> None:
        for lang in self.monitors:
            self.pending[lang] = [Query.from_state(q) for q in state["pending"].get(lang, [])]
            self.keys[lang] = state["keys"].get(lang)
            self.index[lang] = int(state["index"].get(lang, 0))
            self.recent[lang] = deque(state["recent"].get(lang, []), maxlen=self.keep_recent)
        self.counts = Counter({**dict.fromkeys(COUNTERS, 0), **state["counts"]})
        self.routed = Counter(state.get("routed", {}))
        self.held = {str(k): str(v) for k, v in state.get("held", {}).items() if k in self.monitors}
