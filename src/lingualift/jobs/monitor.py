"""The ``monitor`` job: read production queries, test windows against each version's reference.

``run_monitor(MonitorConfig(input=..., langs=[...]))`` opens a
:class:`~lingualift.continual.log_monitor.LogMonitor` in ``out_dir`` (resuming
its state), reads the traffic log (file, folder of segments, or ``-``) once,
and writes ``drift.jsonl`` (a row per window), ``drift.png`` (the timeline),
``summary.json`` (counts of skipped rows: no text, unsure language, other
languages, malformed lines named by file and line), ``state.json`` (where it
stopped) and ``config.yaml``. ``build_reference=<usage file>`` first builds the
reference profile of the version (into its folder) from a sample of the usage
it was built for (:func:`lingualift.continual.deployed.build_reference`).

``follow=true`` keeps reading a log folder every ``poll_seconds`` (at most
``max_polls`` times, until Ctrl-C or SIGTERM), as ``lingualift ecda`` does
(:func:`~lingualift.continual.watch.poll_repeatedly`). Each tested window also
goes to the experiment trackers of ``report_to`` (``out_dir/logs/``) and, with
``metrics_port``, to a Prometheus endpoint
(:class:`~lingualift.continual.metrics.LoopReporter`).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from pathlib import Path
from typing import Any

from lingualift.adapters.store import AdapterStore
from lingualift.config import bookkeeping, save_config, settings_of
from lingualift.continual.deployed import build_reference, load_reference, monitored_languages
from lingualift.continual.log_monitor import LogMonitor, MonitorSettings
from lingualift.continual.logs import check_source
from lingualift.continual.metrics import LoopReporter
from lingualift.continual.monitor import WindowReport
from lingualift.continual.watch import WatchSettings, poll_repeatedly
from lingualift.embed import Encoder
from lingualift.errors import require


@dataclasses.dataclass
class MonitorConfig(WatchSettings, MonitorSettings):
    """Settings of ``lingualift monitor``."""

    input: str = ""
    """Production queries: a folder of traffic-log segments (closed *.jsonl only, in name order),
    a .jsonl log, any data file or folder the one reader takes (CSV/TSV, Parquet, JSON arrays,
    compressed, save_to_disk, hf:<dataset>; docs/data.md, mapped by columns) or '-' for
    standard input."""
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
    """Output folder: drift.jsonl, drift.png, summary.json, state.json, config.yaml, logs/
    (the trackers')."""
    overwrite: bool = bookkeeping(False)
    """Start afresh in an out_dir made with other settings (or rebuild an existing reference)."""


@dataclasses.dataclass
class MonitorResult:
    out_dir: Path
    summary: dict[str, Any]
    reports: list[WindowReport]
    """The windows tested in this run."""


def run_monitor(
    config: MonitorConfig,
    progress: bool = True,
    encoder: Encoder | None = None,
    stop: threading.Event | None = None,
) -> MonitorResult:
    """``lingualift monitor`` (see the module docstring); ``encoder`` overrides the spec.

    ``stop``, once set (the verb sets it on SIGTERM), ends ``follow=true`` at the next
    point between two polls, as Ctrl-C while waiting for the next poll does.
    """
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
    check_source(config.input, allow_empty=config.follow)
    references = {lang: load_reference(store, lang, config.version) for lang in langs}
    fingerprint = config.run_fingerprint(langs, config.input)
    out = Path(config.out_dir)
    reporter = LoopReporter(
        config, out / "logs", "monitor", config=settings_of(config), progress=progress
    )
    monitor = LogMonitor.open(
        out, config.input, references, config, fingerprint, overwrite=config.overwrite,
        progress=progress, encoder=encoder, on_window=reporter.window,
    )  # fmt: skip
    reports: list[WindowReport] = []

    def read() -> None:
        reports.extend(monitor.poll(final=not config.follow))
        if monitor.report_stale:  # an idle poll of a followed folder redraws nothing
            monitor.write_report()

    with reporter.start(monitor):
        stopped = poll_repeatedly(
            read, follow=config.follow, poll_seconds=config.poll_seconds,
            max_polls=config.max_polls, stop=stop,
        )  # fmt: skip
    if stopped and progress:
        print("[monitor] stopped following the log", file=sys.stderr)
    save_config(config, out / "config.yaml")
    return MonitorResult(out, monitor.summary(), reports)
