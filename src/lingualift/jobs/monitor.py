"""The ``monitor`` job: read production queries, test windows against each version's reference.

``run_monitor(MonitorConfig(input=..., langs=[...]))`` reads a traffic log
(file, folder of segments, or ``-``), routes and windows the queries per
language (:class:`~lingualift.continual.stream.StreamMonitor`), tests each
window against the reference profile of the language's current adapter
version and writes into ``out_dir``:

- ``drift.jsonl``: a row per window (language, bounds, size, the three tests
  with statistic / p-value / threshold, the decision, grown and shrunk
  clusters with examples);
- ``drift.png``: the timeline; ``summary.json``: counts of skipped rows
  (no text, unsure language, other languages, malformed lines named by file
  and line);
- ``state.json``: where it stopped: the cursor (segment, line), the pending
  queries of unfinished windows, window numbers. A rerun reads only what came
  after the cursor, so no window is counted twice.

``drift.jsonl`` is rewritten atomically before ``state.json``; a crash
between the two leaves more rows than the state counts, and the extra rows
are dropped on the next start (they are recomputed identically).
``build_reference=<usage file>`` first builds the reference profile of the
version (into its folder) from a sample of the usage it was built for.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from lingualift.adapters.store import AdapterStore
from lingualift.atomic import atomic_write_text
from lingualift.config import bookkeeping, save_config, settings_of
from lingualift.continual.logs import STDIN, Problem, check_source, read_log
from lingualift.continual.monitor import DriftMonitor, WindowReport
from lingualift.continual.reference import Reference
from lingualift.continual.report import plot_drift
from lingualift.continual.stream import StreamMonitor
from lingualift.errors import LingualiftError, require
from lingualift.languages import normalize_language

STATE_FORMAT = "lingualift-monitor-state/1"
CHUNK = 1000


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
    min_confidence: float = 0.5
    """Language identification confidence below which an untagged query is skipped (unsure)."""
    encoder: str | None = None
    """Encoder spec; None uses the one the reference was built with (another is refused)."""
    backend: Literal["local", "ray"] = bookkeeping("local")
    """Embedding backend for the windows' queries: local, or Ray Data map_batches."""
    flush: bool = bookkeeping(False)
    """At the end of the input, also test the last unfinished windows (when big enough)."""
    seed: int = 0
    """Seed of the resampling (per window: seed, language, window number)."""

    def __post_init__(self) -> None:
        require(self.window >= 1, f"window must be at least 1, got {self.window}.")
        require(0 < self.alpha < 1, f"alpha must be in (0, 1), got {self.alpha}.")
        if self.window_time is not None:
            window_seconds(self.window_time)


@dataclasses.dataclass
class MonitorConfig(MonitorSettings):
    """Settings of ``lingualift monitor``."""

    input: str = ""
    """Production queries: a traffic-log .jsonl/.parquet file, a folder of log segments (closed
    *.jsonl only, in name order) or '-' for standard input."""
    langs: list[str] = dataclasses.field(default_factory=list)
    """Languages to monitor; empty: every language of the store that has a current version."""
    store: str | None = None
    """Adapter store root (default $LINGUALIFT_HOME/adapters)."""
    version: str = "current"
    """Which version's reference to compare with ('current' or e.g. 'v2')."""
    # The reference's own settings: its fingerprint covers them, the run's need not.
    build_reference: str | None = bookkeeping(None)
    """Build the version's reference profile first, from this usage file (the queries it was
    built for: JSONL/CSV/Parquet records with a text column)."""
    n_clusters: int | None = bookkeeping(None)
    """Clusters of a reference built here (None: the COMPASS rule on the usage size)."""
    reference_sample: int = bookkeeping(2000)
    """Embedding rows a reference built here keeps."""
    out_dir: str = bookkeeping("runs/monitor")
    """Output folder: drift.jsonl, drift.png, summary.json, state.json, config.yaml."""
    overwrite: bool = bookkeeping(False)
    """Start afresh in an out_dir made with other settings (or rebuild an existing reference)."""


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


# -- references --------------------------------------------------------------------------


def monitored_languages(store: AdapterStore, langs: list[str]) -> list[str]:
    found = [normalize_language(x) for x in langs] or [
        lang for lang in store.languages() if store.current_version(lang) is not None
    ]
    require(found, f"No language to monitor: {store.root} has no current adapter; set langs=.")
    return found


def load_reference(store: AdapterStore, lang: str, version: str | None = None) -> Reference:
    """The reference profile of ``lang``'s version (current by default), or one clear error."""
    found = store.get(lang, None if version in (None, "current") else version)
    reference = Reference.load(found.path, what=found.name)
    reference.version = found.name  # a reference written inside a temp version folder has none
    return reference


def build_reference(
    store: AdapterStore,
    lang: str,
    usage: str,
    *,
    version: str | None = None,
    encoder: Any = "e5-nano",
    n_clusters: int | None = None,
    sample_size: int = 2000,
    seed: int = 0,
    backend: str = "local",
    overwrite: bool = False,
) -> Reference:
    """Build and save (in the version folder) the reference of an existing version."""
    from lingualift.compass.embedding import embed_records
    from lingualift.data.sources import read_source

    found = store.get(lang, None if version in (None, "current") else version)
    records = read_source(usage, role="usage")
    mine = [r for r in records if r.lang in (None, found.lang)]
    require(
        mine, f"{usage} holds no {found.lang} queries; give the usage {found.name} was built for."
    )
    embedded = embed_records(mine, encoder, backend, progress=True)  # type: ignore[arg-type]
    reference = Reference.build(
        embedded, found.lang, n_clusters=n_clusters, seed=seed, sample_size=sample_size,
        encoder_spec=encoder if isinstance(encoder, str) else None, version=found.name,
    )  # fmt: skip
    reference.save(found.path, overwrite=overwrite)
    return reference


def make_monitor(reference: Reference, settings: MonitorSettings) -> DriftMonitor:
    return DriftMonitor(
        reference,
        alpha=settings.alpha,
        n_permutations=settings.n_permutations,
        n_bootstrap=settings.n_bootstrap,
        mmd_max_points=settings.mmd_max_points,
        seed=settings.seed,
    )


def resolve_encoder(
    settings: MonitorSettings, references: dict[str, Reference], encoder: Any = None
) -> Any:
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


# -- the run -----------------------------------------------------------------------------


class MonitorRun:
    """An output folder being filled from a log: state, cursor, drift rows (module docstring)."""

    def __init__(
        self,
        out: Path,
        source: str,
        settings: MonitorSettings,
        references: dict[str, Reference],
        fingerprint: dict[str, Any],
        *,
        overwrite: bool = False,
        progress: bool = True,
        encoder: Any = None,
        keep_recent: int = 3,
    ) -> None:
        self.out = out
        self.source = source
        self.settings = settings
        self.progress = progress
        self.encoder = resolve_encoder(settings, references, encoder)
        self.encoder_spec: str | None = settings.encoder or next(
            (r.encoder_spec for r in references.values() if r.encoder_spec), None
        )
        monitors = {lang: make_monitor(ref, settings) for lang, ref in references.items()}
        seconds = window_seconds(settings.window_time) if settings.window_time else None
        from lingualift.langid import LanguageIdentifier

        self.stream = StreamMonitor(
            monitors,
            self.encoder,
            window=settings.window,
            window_seconds=seconds,
            identifier=LanguageIdentifier(settings.min_confidence),
            backend=settings.backend,
            keep_recent=keep_recent,
        )
        self.fingerprint = fingerprint
        self.cursor: tuple[str, int] | None = None
        self.rows: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.n_problems = 0
        self.extra: dict[str, Any] = {}
        self.fresh = True
        self.paused = False
        self.read = 0
        self.queries = 0
        self.seen_text_field = False
        self._items: Any = None
        self._reported: tuple[int, int] | None = None
        self._load(overwrite)

    @property
    def state_path(self) -> Path:
        return self.out / "state.json"

    def _load(self, overwrite: bool) -> None:
        if not self.state_path.is_file():
            return
        state = json.loads(self.state_path.read_text("utf-8"))
        if state.get("format") != STATE_FORMAT:
            raise LingualiftError(f"{self.state_path} is not a monitor state; use a new out_dir.")
        if state["settings"] != self.fingerprint:
            if overwrite:
                return
            from lingualift.stages import _differences

            diffs = _differences(state["settings"], self.fingerprint)
            raise LingualiftError(
                f"{self.out} was monitored with other settings ({'; '.join(diffs[:3])}); use "
                "another out_dir or pass overwrite=true to start afresh."
            )
        self.fresh = False
        self.cursor = tuple(state["cursor"]) if state["cursor"] else None  # type: ignore[assignment]
        self.stream.restore(state["stream"])
        self.problems, self.n_problems = state["problems"], state["n_problems"]
        self.extra = state.get("extra", {})
        drift = self.out / "drift.jsonl"
        lines = drift.read_text("utf-8").splitlines() if drift.is_file() else []
        self.rows = [json.loads(line) for line in lines[: state["n_windows"]]]

    def _say(self, text: str) -> None:
        if self.progress:
            print(f"[monitor] {text}", file=sys.stderr, flush=True)

    def poll(
        self,
        on_reports: Callable[[list[WindowReport]], bool | None] | None = None,
        final: bool = False,
    ) -> list[WindowReport]:
        """Read what came after the cursor, test the windows it closes, save every chunk.

        ``on_reports`` sees the reports of each closed window before the state is
        saved (the ECDA loop records the updates it owes in ``self.extra``); when
        it returns True, reading pauses right there (``self.paused``) so that the
        caller can act (update, switch references) before the next window, and
        the next call continues from the same place.
        """
        found: list[WindowReport] = []
        self.paused = False
        if self._items is None:
            self._items = read_log(self.source, None if self.source == STDIN else self.cursor)
        since_save = 0
        position = self.cursor
        for item in self._items:
            self.read += 1
            since_save += 1
            position = (item.source, item.line)
            reports: list[WindowReport] = []
            if isinstance(item, Problem):
                self.n_problems += 1
                if len(self.problems) < 20:
                    self.problems.append(f"{item.where}: {item.reason}")
            else:
                self.seen_text_field = self.seen_text_field or item.has_text_field
                self.queries += 1
                reports = self.stream.feed([item])
            if reports:
                self._check_text_field()
                found.extend(reports)
                self.paused = bool(self._record(reports, on_reports))
            if self.paused or since_save >= CHUNK:
                self._check_text_field()
                self.cursor = position
                self.save()
                since_save = 0
                self._say(f"read {self.read} lines, {len(self.rows)} windows so far")
            if self.paused:
                return found
        self._items = None
        if self.fresh and self.read == 0 and final:
            raise LingualiftError(f"The log {self.source} holds no queries; give a non-empty log.")
        self._check_text_field()
        reports = self.stream.flush() if final and self.settings.flush else []
        found.extend(reports)
        self._record(reports, on_reports)
        if since_save or reports:  # nothing new since the last save: leave the files alone
            self.cursor = position
            self.save()
        return found

    def _check_text_field(self) -> None:
        if self.fresh and self.queries and not self.seen_text_field:
            raise LingualiftError(
                f"The log {self.source} has no 'text' field, so queries cannot be embedded; "
                "turn on text logging in the server (or log the prompts) and monitor again."
            )

    def _record(
        self,
        reports: list[WindowReport],
        on_reports: Callable[[list[WindowReport]], bool | None] | None,
    ) -> bool:
        for report in reports:
            self.rows.append(report.to_dict())
            tests = " ".join(
                f"{k} p={t.pvalue:.3g}" for k, t in report.tests.items()
            ) or report.decision.get("skipped", "")
            mark = "DRIFT" if report.drift else "ok"
            self._say(f"{report.lang} window {report.index} (n={report.n}): {mark} {tests}")
        return bool(on_reports(reports)) if on_reports is not None and reports else False

    def save(self) -> None:
        """drift.jsonl, then state.json (the commit point), both atomically."""
        self.fresh = False
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in self.rows)
        atomic_write_text(self.out / "drift.jsonl", lines)
        state = {
            "format": STATE_FORMAT,
            "settings": self.fingerprint,
            "cursor": list(self.cursor) if self.cursor else None,
            "n_windows": len(self.rows),
            "stream": self.stream.state(),
            "problems": self.problems,
            "n_problems": self.n_problems,
            "extra": self.extra,
        }
        atomic_write_text(self.state_path, json.dumps(state, ensure_ascii=False) + "\n")

    def summary(self) -> dict[str, Any]:
        counts = dict(self.stream.counts)
        by_lang = {}
        for lang in self.stream.monitors:
            mine = [r for r in self.rows if r["lang"] == lang]
            by_lang[lang] = {
                "windows": len(mine),
                "drift": sum(r["drift"] for r in mine),
                "queries": self.stream.routed.get(lang, 0),
                "reference": self.stream.monitors[lang].reference.version,
            }
        notes = []
        if counts.get("no_text"):
            notes.append(
                f"{counts['no_text']} queries had no text (text logging off) and could not be "
                "embedded"
            )
        if self.n_problems:
            notes.append(f"{self.n_problems} malformed lines skipped (first: {self.problems[0]})")
        return {
            "input": self.source,
            "cursor": self.cursor,
            "windows": len(self.rows),
            "languages": by_lang,
            "counts": counts,
            "malformed": {"count": self.n_problems, "lines": self.problems},
            "notes": notes,
        }

    @property
    def report_stale(self) -> bool:
        """True when lines were read or windows tested since :meth:`write_report` last ran."""
        return self._reported != (self.read, len(self.rows))

    def write_report(self) -> None:
        self._reported = (self.read, len(self.rows))
        atomic_write_text(
            self.out / "summary.json", json.dumps(self.summary(), indent=2, ensure_ascii=False)
        )
        plot_drift(self.rows, self.out / "drift.png", f"drift monitor: {self.source}")


@dataclasses.dataclass
class MonitorResult:
    out_dir: Path
    summary: dict[str, Any]
    reports: list[WindowReport]
    """The windows tested in this run."""


def run_monitor(config: MonitorConfig, progress: bool = True, encoder: Any = None) -> MonitorResult:
    """``lingualift monitor`` (see the module docstring); ``encoder`` overrides the spec."""
    require(config.input or config.build_reference, "Set input=<log file, folder or ->.")
    store = AdapterStore(config.store)
    langs = monitored_languages(store, config.langs)
    if config.build_reference:
        require(len(langs) == 1, "build_reference builds one language's reference; set langs=.")
        reference = build_reference(
            store, langs[0], config.build_reference, version=config.version,
            encoder=encoder or config.encoder or "e5-nano", n_clusters=config.n_clusters,
            sample_size=config.reference_sample, seed=config.seed, backend=config.backend,
            overwrite=config.overwrite,
        )  # fmt: skip
        if progress:
            print(
                f"[monitor] built the reference of {reference.version}: {reference.n_clusters} "
                f"clusters, radius {reference.radius:.4f}, min window {reference.min_window}",
                file=sys.stderr,
            )
        if not config.input:
            return MonitorResult(Path(config.out_dir), {"reference": reference.summary()}, [])
    check_source(config.input)
    references = {lang: load_reference(store, lang, config.version) for lang in langs}
    fingerprint = settings_of(config)
    fingerprint["langs"] = langs
    if config.input == STDIN:
        fingerprint["input"] = STDIN
    out = Path(config.out_dir)
    run = MonitorRun(out, config.input, config, references, fingerprint,
                     overwrite=config.overwrite, progress=progress, encoder=encoder)  # fmt: skip
    reports = run.poll(final=True)
    save_config(config, out / "config.yaml")
    run.write_report()
    return MonitorResult(out, run.summary(), reports)
