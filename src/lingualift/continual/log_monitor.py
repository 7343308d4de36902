"""The log monitor: a traffic log read window by window, each tested per language; it owns its state.

:class:`LogMonitor` reads a traffic log (a file, a folder of closed segments,
or ``-``) after its cursor, routes and windows the queries per language
(:class:`~lingualift.continual.stream.StreamMonitor`), tests each window
against the reference profile of its language
(:class:`~lingualift.continual.monitor.DriftMonitor`) and keeps, in its folder:

- ``drift.jsonl``: a row per window (language, bounds, size, the three tests
  with statistic / p-value / threshold, the decision, grown and shrunk
  clusters with examples);
- ``state.json``: :meth:`LogMonitor.state`: the settings it was made with, the
  cursor (segment, line), the pending queries of unfinished windows, window
  numbers, the last windows' texts, counters and the malformed lines. A rerun
  (:meth:`LogMonitor.open`) reads only what came after the cursor, so no window
  is counted twice;
- ``summary.json`` and ``drift.png`` (:meth:`LogMonitor.write_report`).

``drift.jsonl`` is rewritten atomically before ``state.json`` (the commit
point); a crash between the two leaves more rows than the state counts, and
the extra rows are dropped on the next start (they are recomputed
identically). Whoever acts on the windows (the ECDA loop) keeps its own state
and uses the public methods: :meth:`~LogMonitor.recent_usage`,
:meth:`~LogMonitor.window_rows`, :meth:`~LogMonitor.windows_closed`,
:meth:`~LogMonitor.set_reference`, :meth:`~LogMonitor.settle_reference`,
:meth:`~LogMonitor.reset_recent`, :meth:`~LogMonitor.save`.

**A reference that settles** (:meth:`LogMonitor.settle_reference`, after a
promotion): the language's next windows are not tested (their drift rows say
``settling the reference of sw/v2: 240 of 800 queries``) until they hold the
minimum number of queries; then the reference of those queries is built
(:meth:`Reference.build <lingualift.continual.reference.Reference.build>`
with the monitor's encoder), saved into the version folder in one atomic
rename, and the next windows are tested against it. The queries gathered so
far are in the state, so a crash while settling resumes settling; building
again from the same queries gives the same reference.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from lingualift.atomic import atomic_write_text
from lingualift.config import bookkeeping, settings_of
from lingualift.continual.logs import STDIN, Problem, read_log
from lingualift.continual.monitor import DriftMonitor, WindowReport
from lingualift.continual.reference import Reference
from lingualift.continual.report import plot_drift
from lingualift.continual.stream import StreamMonitor
from lingualift.data.columns import Columns, shorthand_columns
from lingualift.embed import Encoder
from lingualift.errors import LingualiftError, require
from lingualift.stages import describe_differences

STATE_FILE = "state.json"
DRIFT_FILE = "drift.jsonl"
STATE_FORMAT = "lingualift-monitor-state/1"
CHUNK = 1000
"""Lines read between two saves of the state."""
MAX_NAMED_PROBLEMS = 20
"""Malformed lines named in the state and the summary (all are counted)."""


@dataclasses.dataclass
class MonitorSettings:
    """How windows are cut and tested (shared by ``monitor`` and ``ecda``)."""

    window: int = 200
    """Queries per window (count windows), per language."""
    window_time: str | None = None
    """Cut windows by time instead, from the rows' ts: e.g. '30m', '1h', '1d' or seconds."""
    alpha: float = 0.05
    """False-alarm level per stable window: Holm-Bonferroni over the three tests at this
    family level (a window drifts when min p <= alpha/3)."""
    n_permutations: int = 200
    """Permutations of the MMD test."""
    n_bootstrap: int = 500
    """Bootstrap resamples of the JS test."""
    mmd_max_points: int = 500
    """Rows per side of the MMD (subsampled above it)."""
    min_confidence: float | None = None
    """Language identification confidence below which an untagged query is skipped (unsure);
    None: the identifier's threshold calibrated in docs/langid.md (as serve uses)."""
    encoder: str | None = None
    """Encoder spec; None uses the one the reference was built with (another is refused)."""
    backend: Literal["local", "ray"] = bookkeeping("local")
    """Embedding backend for the windows' queries: local, or Ray Data map_batches."""
    flush: bool = bookkeeping(False)
    """At the end of the input, also test the last unfinished windows (when big enough)."""
    seed: int = 0
    """Seed of the resampling (per window: seed, language, window number)."""
    # The mapping enters the monitor's fingerprint only when it renames something
    # (run_fingerprint), so folders made before it existed resume.
    columns: Columns = bookkeeping(default_factory=Columns)
    """Which columns of the input hold what (text, id, lang, ts), as every verb takes them, e.g.
    columns.text=question columns.ts=time for a CSV of queries (docs/data.md)."""
    text_field: str | None = bookkeeping(None)
    """Short form of columns.text."""

    def __post_init__(self) -> None:
        require(self.window >= 1, f"window must be at least 1, got {self.window}.")
        require(0 < self.alpha < 1, f"alpha must be in (0, 1), got {self.alpha}.")
        require(
            self.min_confidence is None or 0 <= self.min_confidence <= 1,
            f"min_confidence must be in [0, 1] (or unset), got {self.min_confidence}.",
        )
        if self.window_time is not None:
            window_seconds(self.window_time)
        self.columns = shorthand_columns(self.columns, self.text_field)

    def run_fingerprint(self, langs: list[str], source: str) -> dict[str, Any]:
        """What a monitoring run's results depend on, for resuming its folder: the settings,
        the identifier's threshold as resolved (the calibrated one when unset), the column
        mapping when it renames, the languages, and whether the input is standard input."""
        from lingualift.langid import LanguageIdentifier

        fingerprint = settings_of(self)
        fingerprint["min_confidence"] = LanguageIdentifier(self.min_confidence).min_confidence
        if self.columns != Columns():
            fingerprint["columns"] = dataclasses.asdict(self.columns)
        fingerprint["langs"] = langs
        if source == STDIN:
            fingerprint["input"] = STDIN
        return fingerprint


def window_seconds(spec: str | float | int) -> float:
    """'90', '30m', '1h', '1d' -> seconds."""
    text = str(spec).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        value = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        raise LingualiftError(
            f"window_time={spec!r} is not a duration; write e.g. 90, 30m, 1h or 1d."
        ) from None
    require(value > 0, f"window_time must be positive, got {spec!r}.")
    return value


def drift_monitor(reference: Reference, settings: MonitorSettings) -> DriftMonitor:
    """The window tester of one language's reference, with the settings' statistics."""
    return DriftMonitor(
        reference,
        alpha=settings.alpha,
        n_permutations=settings.n_permutations,
        n_bootstrap=settings.n_bootstrap,
        mmd_max_points=settings.mmd_max_points,
        seed=settings.seed,
    )


def resolve_encoder(
    settings: MonitorSettings, references: dict[str, Reference], encoder: Encoder | None = None
) -> Encoder:
    """The encoder of the windows: the references' own, the one named, or the object given."""
    from lingualift.embed import get_encoder

    spec = settings.encoder or next(
        (r.encoder_spec for r in references.values() if r.encoder_spec), None
    )
    if encoder is None:
        require(spec, "The reference does not say which encoder built it; set encoder=<spec>.")
        encoder = get_encoder(spec)
    spec = spec or encoder.name
    for lang, reference in references.items():
        if reference.encoder != encoder.name:
            raise LingualiftError(
                f"The reference profile of {reference.version or lang} was built with encoder "
                f"{reference.encoder}, not {encoder.name} ({spec}); monitor with "
                f"{reference.encoder_spec or reference.encoder} or rebuild the reference."
            )
    return encoder


def damaged(path: Path, why: str) -> LingualiftError:
    """The one sentence for a monitor state that cannot be read back."""
    return LingualiftError(
        f"{path} is damaged ({why}); delete it to monitor the log afresh, or use another out_dir."
    )


def read_state(path: Path) -> dict[str, Any] | None:
    """A monitor's saved state (None when there is none), or one sentence when it is damaged."""
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text("utf-8"))
    except UnicodeDecodeError as exc:
        raise damaged(path, f"byte {exc.start} is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise damaged(path, f"line {exc.lineno}: {exc.msg}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise LingualiftError(f"{path} is not a monitor state; use a new out_dir.")
    if "settings" not in state:
        raise damaged(path, "no settings")
    return state


OnReports = Callable[[list[WindowReport]], bool | None]
"""Sees the reports of the windows a line closed, before the state is saved; True pauses."""
OnWindow = Callable[[WindowReport, int], None]
"""Sees one tested window's report and its number among all windows (1-based)."""


class LogMonitor:
    """A log, its windows per language and their tests, with its own state (module docstring).

    Args:
        folder: where drift.jsonl, state.json, summary.json and drift.png go.
        source: the log: a .jsonl/.parquet file, a folder of segments, or '-'.
        references: the reference profile of each monitored language.
        settings: windows and statistics.
        fingerprint: what a resumed folder must have been made with (the caller's settings).
        encoder: an encoder object instead of the references' spec.
        keep_recent: windows per language kept with their texts (for an update).
        progress: print a line per window and per chunk of lines.
        on_window: sees each tested window's report and its number among all windows
            (1-based, the row's line in drift.jsonl): trackers and Prometheus metrics.
    """

    def __init__(
        self,
        folder: str | Path,
        source: str,
        references: dict[str, Reference],
        settings: MonitorSettings,
        fingerprint: dict[str, Any],
        *,
        encoder: Encoder | None = None,
        keep_recent: int = 3,
        progress: bool = True,
        on_window: OnWindow | None = None,
    ) -> None:
        from lingualift.langid import LanguageIdentifier

        self.folder = Path(folder)
        self.source = source
        self.settings = settings
        self.fingerprint = fingerprint
        self.progress = progress
        self.on_window = on_window
        self.encoder = resolve_encoder(settings, references, encoder)
        self.encoder_spec: str | None = settings.encoder or next(
            (r.encoder_spec for r in references.values() if r.encoder_spec), None
        )
        seconds = window_seconds(settings.window_time) if settings.window_time else None
        self._stream = StreamMonitor(
            {lang: drift_monitor(ref, settings) for lang, ref in references.items()},
            self.encoder,
            window=settings.window,
            window_seconds=seconds,
            identifier=LanguageIdentifier(settings.min_confidence),
            backend=settings.backend,
            keep_recent=keep_recent,
        )
        self.cursor: tuple[str, int] | None = None
        self._rows: list[dict[str, Any]] = []
        self._problems: list[str] = []
        self._n_problems = 0
        self._fresh = True
        self._paused = False
        self._read = 0
        self._queries = 0
        self._seen_text_field = False
        self._items: Any = None
        self._reported: tuple[int, int] | None = None
        self._settling: dict[str, dict[str, Any]] = {}
        self._settled: list[dict[str, Any]] = []

    @classmethod
    def open(
        cls,
        folder: str | Path,
        source: str,
        references: dict[str, Reference],
        settings: MonitorSettings,
        fingerprint: dict[str, Any],
        *,
        overwrite: bool = False,
        **options: Any,
    ) -> LogMonitor:
        """A monitor that continues where ``folder``'s state stopped (a new one when it has none).

        A state made with another fingerprint is refused in one sentence unless
        ``overwrite`` (then the monitor starts afresh); a damaged one is refused.
        """
        state = read_state(Path(folder) / STATE_FILE)  # a damaged state fails before any loading
        if state is not None and state["settings"] != fingerprint and not overwrite:
            diffs = describe_differences(state["settings"], fingerprint)
            raise LingualiftError(
                f"{folder} was monitored with other settings ({'; '.join(diffs[:3])}); "
                "use another out_dir or pass overwrite=true to start afresh."
            )
        monitor = cls(folder, source, references, settings, fingerprint, **options)
        if state is not None and state["settings"] == fingerprint:
            monitor.restore(state)
        return monitor

    # -- state -----------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE

    def state(self) -> dict[str, Any]:
        """Everything needed to continue later, as plain JSON (see the module docstring)."""
        return {
            "format": STATE_FORMAT,
            "settings": self.fingerprint,
            "cursor": list(self.cursor) if self.cursor else None,
            "n_windows": len(self._rows),
            "stream": self._stream.state(),
            "problems": self._problems,
            "n_problems": self._n_problems,
            "settling": self._settling,
            "settled": self._settled,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` (the drift rows are read back from ``drift.jsonl``)."""
        try:
            cursor = state["cursor"]
            self._stream.restore(state["stream"])
            self.cursor = (str(cursor[0]), int(cursor[1])) if cursor else None
            problems, n_problems, n_windows = (
                list(state["problems"]), int(state["n_problems"]), int(state["n_windows"])
            )  # fmt: skip
            settling = {str(k): dict(v) for k, v in state.get("settling", {}).items()}
            settled = [dict(x) for x in state.get("settled", [])]
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise self._damaged(f"{type(exc).__name__}: {exc}") from None
        self._problems, self._n_problems = problems, n_problems
        self._settling, self._settled = settling, settled
        self._rows = self._read_rows(n_windows)
        self._fresh = False

    def save(self) -> None:
        """drift.jsonl, then state.json (the commit point), both atomically."""
        self._fresh = False
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in self._rows)
        atomic_write_text(self.folder / DRIFT_FILE, lines)
        atomic_write_text(self.state_path, json.dumps(self.state(), ensure_ascii=False) + "\n")

    def _damaged(self, why: str) -> LingualiftError:
        return damaged(self.state_path, why)

    def _read_rows(self, n_windows: int) -> list[dict[str, Any]]:
        path = self.folder / DRIFT_FILE
        lines = path.read_text("utf-8").splitlines() if path.is_file() else []
        rows = []
        for number, line in enumerate(lines[:n_windows], start=1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise LingualiftError(
                    f"{path}:{number} is not a drift row (malformed JSON); delete {path} and "
                    f"{self.state_path} to monitor the log afresh."
                ) from None
        if len(rows) < n_windows:
            raise self._damaged(f"it counts {n_windows} windows but {path} holds {len(rows)}")
        return rows

    # -- reading ---------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        if self.progress:
            print(f"[monitor] {text}", file=sys.stderr, flush=True)

    @property
    def paused(self) -> bool:
        """True when the last :meth:`poll` stopped because ``on_reports`` asked it to."""
        return self._paused

    @property
    def languages(self) -> list[str]:
        return list(self._stream.monitors)

    def poll(self, on_reports: OnReports | None = None, final: bool = False) -> list[WindowReport]:
        """Read what came after the cursor, test the windows it closes, save every chunk.

        ``on_reports`` sees the reports of each closed window before the state is
        saved (an ECDA loop records the updates it owes in its own state); when it
        returns True, reading pauses right there (:attr:`paused`) so that the
        caller can act (update, switch references) before the next window, and the
        next call continues from the same place. ``final``: the input ends here
        (flush the open windows when ``settings.flush``; a new monitor that found no
        readable query is an error).
        """
        found: list[WindowReport] = []
        self._paused = False
        if self._items is None:
            self._items = read_log(
                self.source,
                None if self.source == STDIN else self.cursor,
                self.settings.columns,
            )
        since_save = 0
        position = self.cursor
        for item in self._items:
            self._read += 1
            since_save += 1
            position = (item.source, item.line)
            reports: list[WindowReport] = []
            if isinstance(item, Problem):
                self._n_problems += 1
                if len(self._problems) < MAX_NAMED_PROBLEMS:
                    self._problems.append(f"{item.where}: {item.reason}")
            else:
                self._seen_text_field = self._seen_text_field or item.has_text_field
                self._queries += 1
                reports = self._stream.feed([item])
            if reports:
                self._check_text_field()
                found.extend(reports)
                self._paused = self._record(reports, on_reports)
            # A new monitor saves nothing before its first query: a log of unreadable lines
            # is refused at its end with nothing written.
            if self._paused or (since_save >= CHUNK and self._has_queries()):
                self._check_text_field()
                self.cursor = position
                self.save()
                since_save = 0
                self._say(f"read {self._read} lines, {len(self._rows)} windows so far")
            if self._paused:
                return found
        self._items = None
        if final and not self._has_queries():
            self._refuse_unreadable()
        self._check_text_field()
        reports = self._stream.flush() if final and self.settings.flush else []
        found.extend(reports)
        self._record(reports, on_reports)
        self.cursor = position
        if (since_save or reports) and self._has_queries():
            self.save()  # nothing new since the last save: the files are left alone
        return found

    def _has_queries(self) -> bool:
        return not self._fresh or self._queries > 0

    def _refuse_unreadable(self) -> None:
        if self._read == 0:
            raise LingualiftError(f"The log {self.source} holds no queries; give a non-empty log.")
        raise LingualiftError(
            f"The log {self.source} has no readable line: all {self._n_problems} lines were "
            f"skipped (first: {self._problems[0]}); fix the log or give another."
        )

    def _check_text_field(self) -> None:
        if self._fresh and self._queries and not self._seen_text_field:
            column = self.settings.columns.text
            raise LingualiftError(
                f"The input {self.source} has no {column!r} column, so queries cannot be "
                "embedded; map the column that holds them with columns.text=<column> (or "
                "text_field=<column>), or for a traffic log turn on text logging in the server."
            )

    def _record(self, reports: list[WindowReport], on_reports: OnReports | None) -> bool:
        for report in reports:
            if report.decision.get("held") and report.lang in self._settling:
                self._grow(report)
            self._rows.append(report.to_dict())
            if self.on_window is not None:
                self.on_window(report, len(self._rows))
            tests = " ".join(
                f"{k} p={t.pvalue:.3g}" for k, t in report.tests.items()
            ) or report.decision.get("skipped", "")
            mark = "DRIFT" if report.drift else "ok"
            self._say(f"{report.lang} window {report.index} (n={report.n}): {mark} {tests}")
        return bool(on_reports(reports)) if on_reports is not None and reports else False

    # -- what an update reads and changes ---------------------------------------------------

    def recent_usage(self, lang: str, drifted_only: bool = True) -> list[dict[str, Any]]:
        """The last windows of ``lang`` (``index``, ``drift``, ``texts``, ``ids``), oldest first;
        only those that drifted, by default."""
        return self._stream.recent_usage(lang, drifted_only)

    def window_rows(self, lang: str, indices: list[int] | None = None) -> list[dict[str, Any]]:
        """The drift rows of ``lang``'s windows (those numbered ``indices``, or all), in order."""
        return [
            row
            for row in self._rows
            if row["lang"] == lang and (indices is None or row["window"] in indices)
        ]

    def windows_closed(self, lang: str) -> int:
        """How many windows of ``lang`` have closed (the next window's number)."""
        return self._stream.windows_closed(lang)

    def set_reference(self, lang: str, reference: Reference) -> None:
        """Test ``lang``'s next windows against ``reference`` (after a promotion)."""
        self._settling.pop(lang, None)
        self._stream.set_reference(lang, drift_monitor(reference, self.settings))

    def settle_reference(
        self, lang: str, reference: Reference, folder: str | Path, rows: int
    ) -> None:
        """Grow ``lang``'s next reference from its next windows (after a promotion).

        ``reference`` is the new version's provisional one (it names the version);
        the next windows are held untested until they hold ``rows`` queries, then
        their reference is built, saved as ``folder/reference/`` (atomically,
        replacing the provisional one) and tested against. Asking again for the
        version being settled, or already settled, changes nothing.
        """
        require(rows >= 1, f"A settling reference needs at least 1 query; got {rows}.")
        version = reference.version
        busy = self._settling.get(lang)
        if (busy and busy["version"] == version) or any(
            s["lang"] == lang and s["version"] == version for s in self._settled
        ):
            return
        self.set_reference(lang, reference)
        self._settling[lang] = {
            "version": version, "folder": str(folder), "rows": rows, "windows": [], "texts": [],
        }  # fmt: skip
        self._stream.hold(lang, self._settling_note(lang))

    def settling(self, lang: str) -> dict[str, Any] | None:
        """The reference ``lang`` is settling: version, queries gathered, rows needed, windows."""
        found = self._settling.get(lang)
        if found is None:
            return None
        return {
            "version": found["version"],
            "queries": len(found["texts"]),
            "rows": found["rows"],
            "windows": list(found["windows"]),
        }

    @property
    def settled_references(self) -> list[dict[str, Any]]:
        """Every reference this monitor settled: language, version, the windows and queries."""
        return [dict(x) for x in self._settled]

    def _settling_note(self, lang: str) -> str:
        found = self._settling[lang]
        return (
            f"settling the reference of {found['version']}: {len(found['texts'])} of "
            f"{found['rows']} queries"
        )

    def _grow(self, report: WindowReport) -> None:
        """A held window's queries join the settling reference; built once there are enough."""
        lang = report.lang
        found = self._settling[lang]
        found["windows"].append(report.index)
        found["texts"].extend(report.texts)
        report.decision["skipped"] = self._settling_note(lang)
        report.decision["settling"] = found["version"]
        if len(found["texts"]) < found["rows"]:
            self._stream.hold(lang, self._settling_note(lang))
            return
        reference = self._build_reference(lang, found["texts"], found["version"])
        reference.settings["settled_from"] = {
            "windows": found["windows"], "queries": len(found["texts"]),
        }  # fmt: skip
        reference.save(found["folder"], overwrite=True)
        report.decision["skipped"] += "; settled, the next windows are tested against it"
        self._settled.append({
            "lang": lang, "version": found["version"], "windows": found["windows"],
            "queries": len(found["texts"]),
        })  # fmt: skip
        self.set_reference(lang, reference)
        first, last = found["windows"][0], found["windows"][-1]
        self._say(
            f"{lang}: reference of {found['version']} settled on windows {first}-{last} "
            f"({len(found['texts'])} queries)"
        )

    def _build_reference(self, lang: str, texts: list[str], version: str | None) -> Reference:
        from lingualift.compass.embedding import EmbeddedSet, embed_texts

        vectors, name = embed_texts(texts, self.encoder, self.settings.backend, progress=False)
        usage = EmbeddedSet(vectors, name)
        options = {"texts": texts, "seed": self.settings.seed, "encoder_spec": self.encoder_spec,
                   "version": version}  # fmt: skip
        reference = Reference.build(usage, lang, **options)
        if self.settings.window_time is None and reference.min_window > self.settings.window:
            # Windows of this size could never be tested against it: fewer clusters.
            reference = Reference.build(
                usage, lang, n_clusters=max(1, self.settings.window // 2), **options
            )
        return reference

    def reset_recent(self, lang: str) -> None:
        """Forget ``lang``'s last windows (their queries have been acted on)."""
        self._stream.reset_recent(lang)

    # -- reporting -------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        counts = dict(self._stream.counts)
        by_lang = {}
        for lang, monitor in self._stream.monitors.items():
            mine = self.window_rows(lang)
            by_lang[lang] = {
                "windows": len(mine),
                "drift": sum(r["drift"] for r in mine),
                "queries": self._stream.routed.get(lang, 0),
                "reference": monitor.reference.version,
                "settling": self.settling(lang),
            }
        notes = []
        if counts.get("no_text"):
            notes.append(
                f"{counts['no_text']} queries had no text (text logging off) and could not be "
                "embedded"
            )
        if self._n_problems:
            notes.append(f"{self._n_problems} malformed lines skipped (first: {self._problems[0]})")
        return {
            "input": self.source,
            "cursor": self.cursor,
            "windows": len(self._rows),
            "languages": by_lang,
            "counts": counts,
            "malformed": {"count": self._n_problems, "lines": self._problems},
            "settled_references": self.settled_references,
            "notes": notes,
        }

    @property
    def report_stale(self) -> bool:
        """True when lines were read or windows tested since :meth:`write_report` last ran."""
        return self._reported != (self._read, len(self._rows))

    def write_report(self) -> None:
        """``summary.json`` and ``drift.png``."""
        self._reported = (self._read, len(self._rows))
        atomic_write_text(
            self.folder / "summary.json",
            json.dumps(self.summary(), indent=2, ensure_ascii=False),
        )
        plot_drift(self._rows, self.folder / "drift.png", f"drift monitor: {self.source}")
