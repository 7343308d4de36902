"""What the monitor and the ECDA loop report besides their files: trackers and Prometheus.

:class:`LoopReporter` sees every tested window (the
:class:`~lingualift.continual.log_monitor.LogMonitor`'s ``on_window`` hook) and
every update the ECDA loop carries out (:meth:`LoopReporter.observe` wraps its
:class:`~lingualift.continual.loop.Updater`), and sends them

- to the experiment trackers of ``report_to`` (:class:`~lingualift.tracking.RunTrackers`,
  the same settings and backends as training): per window ``monitor/<lang>/...``
  (the three tests' p-values, statistics and thresholds, the drift flag, the
  window's size and number), per update ``ecda/<lang>/...`` (planned, promoted,
  the gate's NLLs, gain and regret, the versions), at a step that counts the
  windows tested so far (W&B needs steps that never go back);
- to Prometheus (:class:`LoopMetrics`, served on ``metrics_port``): the names
  below, each starting with ``lingualift_`` like the server's.

Counters start from what the folder already holds (the monitor's drift rows,
the loop's finished updates), so they do not fall back to zero when a job
restarts.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lingualift.continual.loop import PlannedUpdate, UpdateOutcome, Updater
from lingualift.continual.monitor import WindowReport
from lingualift.errors import LingualiftError
from lingualift.tracking import RunTrackers

if TYPE_CHECKING:
    from lingualift.adapters.store import AdapterStore
    from lingualift.continual.log_monitor import LogMonitor
    from lingualift.continual.loop import EcdaLoop
    from lingualift.continual.watch import WatchSettings

logger = logging.getLogger(__name__)

SKIP_REASONS = ("no_text", "unsure", "other_language", "no_ts", "late")
"""The monitor's counters of rows it could not use (its ``too_small`` counts windows)."""


def version_number(name: str | None) -> int | None:
    """``sw/v3`` -> 3 (None for None or a name without a version)."""
    found = re.search(r"v(\d+)$", name or "")
    return int(found.group(1)) if found else None


def window_values(report: WindowReport) -> dict[str, Any]:
    """A window's report as tracker values under ``monitor/<lang>/``."""
    prefix = f"monitor/{report.lang}/"
    values: dict[str, Any] = {
        "window": report.index,
        "n": report.n,
        "drift": report.drift,
        "skipped": bool(report.decision.get("skipped")),
    }
    for name, test in report.tests.items():
        values[f"{name}_pvalue"] = test.pvalue
        values[f"{name}_statistic"] = test.statistic
        values[f"{name}_threshold"] = test.threshold
    return {prefix + key: value for key, value in values.items()}


def planned_values(update: PlannedUpdate) -> dict[str, Any]:
    """An update about to be carried out as tracker values under ``ecda/<lang>/``."""
    prefix = f"ecda/{update.lang}/"
    return {
        prefix + "planned": 1,
        prefix + "trigger_window": update.window,
        prefix + "usage_windows": len(update.windows),
        prefix + "usage_queries": len(update.texts),
        prefix + "parent_version": version_number(update.parent),
    }


def decision_values(
    update: PlannedUpdate, outcome: UpdateOutcome, gate: dict[str, Any] | None
) -> dict[str, Any]:
    """An update's decision (and the gate's scores, when found) under ``ecda/<lang>/``."""
    prefix = f"ecda/{update.lang}/"
    values: dict[str, Any] = {
        "promoted": outcome.status == "promoted",
        "candidate_version": version_number(outcome.candidate),
        "current_version": version_number(outcome.current),
    }
    for split, change in (("new", "gain"), ("old", "regret")):
        scores = (gate or {}).get(split, {})
        values[f"{change}_{split}"] = scores.get(change)
        values[f"nll_{split}_current"] = scores.get("current")
        values[f"nll_{split}_candidate"] = scores.get("candidate")
    return {prefix + key: value for key, value in values.items()}


def gate_metrics(store: AdapterStore | None, update: PlannedUpdate) -> dict[str, Any] | None:
    """The gate's scores of ``update`` from the store's history (None when not recorded)."""
    if store is None:
        return None
    for entry in reversed(store.history(update.lang)):
        if entry.get("update") == update.id:
            return entry.get("metrics")
    return None


class LoopMetrics:
    """Prometheus metrics of a monitor (and an ECDA loop), in a registry of their own.

    Per language (label ``lang``): windows tested, skipped (too small) and
    alarmed; the last window's p-value, statistic and threshold per test
    (label ``test``), its size and time; updates carried out, promotions, kept
    candidates, the last gate's gain and regret; the version the windows are
    tested against. Rows read and rows skipped by reason are read from the
    monitor when scraped (:meth:`watch_counts`).
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = r = CollectorRegistry(auto_describe=True)
        self.windows = Counter(
            "lingualift_monitor_windows", "Windows tested per language", ["lang"], registry=r
        )
        self.skipped_windows = Counter(
            "lingualift_monitor_skipped_windows",
            "Windows too small for the statistics, not tested",
            ["lang"],
            registry=r,
        )
        self.alarms = Counter(
            "lingualift_monitor_alarms", "Windows that drifted (drift alarms)", ["lang"], registry=r
        )
        self.pvalue = Gauge(
            "lingualift_monitor_pvalue",
            "p-value of each test on the language's last tested window",
            ["lang", "test"],
            registry=r,
        )
        self.statistic = Gauge(
            "lingualift_monitor_statistic",
            "Statistic of each test on the language's last tested window",
            ["lang", "test"],
            registry=r,
        )
        self.threshold = Gauge(
            "lingualift_monitor_threshold",
            "Critical value of each test's statistic at the per-test level (alpha/3)",
            ["lang", "test"],
            registry=r,
        )
        self.window_queries = Gauge(
            "lingualift_monitor_window_queries",
            "Queries in the language's last window",
            ["lang"],
            registry=r,
        )
        self.last_window = Gauge(
            "lingualift_monitor_last_window_timestamp_seconds",
            "When the language's last window was tested (Unix time)",
            ["lang"],
            registry=r,
        )
        self.version = Gauge(
            "lingualift_current_version",
            "Adapter version whose reference the windows are tested against (ECDA: current)",
            ["lang"],
            registry=r,
        )
        self.updates = Counter(
            "lingualift_ecda_updates", "ECDA updates carried out (planned on drift)", ["lang"],
            registry=r,
        )  # fmt: skip
        self.promotions = Counter(
            "lingualift_ecda_promotions", "ECDA candidates promoted to current", ["lang"],
            registry=r,
        )  # fmt: skip
        self.kept = Counter(
            "lingualift_ecda_kept", "ECDA candidates refused by the gate (current kept)", ["lang"],
            registry=r,
        )  # fmt: skip
        self.gain = Gauge(
            "lingualift_ecda_gate_gain",
            "The last gate's gain on the new usage's held-out set (current NLL - candidate NLL)",
            ["lang"],
            registry=r,
        )
        self.regret = Gauge(
            "lingualift_ecda_gate_regret",
            "The last gate's loss on the old held-out set (candidate NLL - current NLL)",
            ["lang"],
            registry=r,
        )

    # -- what the reporter tells it --------------------------------------------------------

    def add_language(self, lang: str, version: str | None) -> None:
        """Show ``lang`` from the start (every counter at 0) with the version it is tested on."""
        for counter in (self.windows, self.skipped_windows, self.alarms):
            counter.labels(lang)
        for counter in (self.updates, self.promotions, self.kept):
            counter.labels(lang)
        self.set_version(lang, version)

    def set_version(self, lang: str, version: str | None) -> None:
        number = version_number(version)
        if number is not None:
            self.version.labels(lang).set(number)

    def count_rows(self, rows: list[dict[str, Any]]) -> None:
        """Start the window counters from drift rows the monitor holds already."""
        for row in rows:
            lang = row["lang"]
            if row.get("decision", {}).get("skipped"):
                self.skipped_windows.labels(lang).inc()
            else:
                self.windows.labels(lang).inc()
                if row.get("drift"):
                    self.alarms.labels(lang).inc()

    def window(self, report: WindowReport) -> None:
        lang = report.lang
        self.window_queries.labels(lang).set(report.n)
        self.last_window.labels(lang).set(time.time())
        if report.decision.get("skipped"):
            self.skipped_windows.labels(lang).inc()
            return
        self.windows.labels(lang).inc()
        if report.drift:
            self.alarms.labels(lang).inc()
        for name, test in report.tests.items():
            self.pvalue.labels(lang, name).set(test.pvalue)
            self.statistic.labels(lang, name).set(test.statistic)
            if test.threshold is not None and math.isfinite(test.threshold):
                self.threshold.labels(lang, name).set(test.threshold)

    def decided(self, lang: str, status: str, gate: dict[str, Any] | None) -> None:
        (self.promotions if status == "promoted" else self.kept).labels(lang).inc()
        if gate:
            if gate.get("new", {}).get("gain") is not None:
                self.gain.labels(lang).set(gate["new"]["gain"])
            if gate.get("old", {}).get("regret") is not None:
                self.regret.labels(lang).set(gate["old"]["regret"])

    def watch_counts(self, summary: Callable[[], dict[str, Any]]) -> None:
        """Read rows read and rows skipped (by reason) from ``summary()`` at every scrape."""
        self.registry.register(_RowCounts(summary))

    # -- exposition ------------------------------------------------------------------------

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> MetricsServer:
        """Serve ``/metrics`` on ``host:port`` (0: a free port) in a daemon thread."""
        return MetricsServer(self.registry, port, host)


class _RowCounts:
    """A collector of the monitor's row counters, read from its summary when scraped."""

    def __init__(self, summary: Callable[[], dict[str, Any]]) -> None:
        self.summary = summary

    def describe(self) -> list[Any]:
        return list(self._families({}, 0))

    def collect(self) -> Iterator[Any]:
        try:
            summary = self.summary()
            counts, malformed = summary["counts"], summary["malformed"]["count"]
        except Exception:  # a scrape must never fail the job; the next one reads again
            logger.debug("monitor counters unreadable during a scrape", exc_info=True)
            return iter(())
        return self._families(counts, malformed)

    @staticmethod
    def _families(counts: dict[str, int], malformed: int) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        yield CounterMetricFamily(
            "lingualift_monitor_rows", "Log rows read by the monitor", value=counts.get("rows", 0)
        )
        skipped = CounterMetricFamily(
            "lingualift_monitor_skipped_rows",
            "Log rows the monitor could not use, by reason (malformed lines included)",
            labels=["reason"],
        )
        for reason in SKIP_REASONS:
            skipped.add_metric([reason], counts.get(reason, 0))
        skipped.add_metric(["malformed"], malformed)
        yield skipped


class MetricsServer:
    """prometheus-client's HTTP server for one registry; :meth:`close` stops it."""

    def __init__(self, registry: Any, port: int, host: str) -> None:
        from prometheus_client import start_http_server

        try:
            self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise LingualiftError(
                f"Cannot serve metrics on {host}:{port} ({exc.strerror or exc}); choose another "
                "metrics_port (0 picks a free one)."
            ) from None
        self.host = host
        self.port = int(self._httpd.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class LoopReporter:
    """Sends tested windows and ECDA decisions to trackers and Prometheus (module docstring).

    Args:
        settings: report_to (and where trackers write), metrics_port and metrics_host.
        log_dir: the job's logs/ folder (TensorBoard events, W&B files, MLflow's default store).
        run_name: the trackers' run name ('monitor', 'ecda').
        config: the job's settings, recorded as the run's hyperparameters.
        store: the adapter store, where an update's gate scores are read back.
        progress: print where the metrics are served.
    """

    def __init__(
        self,
        settings: WatchSettings,
        log_dir: str | Path,
        run_name: str,
        *,
        config: dict[str, Any] | None = None,
        store: AdapterStore | None = None,
        progress: bool = True,
    ) -> None:
        self.settings = settings
        self.run_name = run_name
        self.store = store
        self.progress = progress
        # Checked now (a tracker that is not installed fails before anything is written).
        self.trackers = RunTrackers(settings, log_dir, run_name, config)
        self.metrics: LoopMetrics | None = None
        if settings.metrics_port is not None:
            try:
                import prometheus_client  # noqa: F401
            except ImportError:
                raise LingualiftError(
                    "metrics_port needs prometheus-client; pip install lingualift[prometheus] "
                    "or leave metrics_port unset."
                ) from None
            self.metrics = LoopMetrics()
        self.server: MetricsServer | None = None
        self.step = 0
        """Windows tested so far: the trackers' step."""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, monitor: LogMonitor, loop: EcdaLoop | None = None) -> LoopReporter:
        """Seed the counters from ``monitor`` (and ``loop``) and serve the metrics; the trackers
        open with the first value they get."""
        summary = monitor.summary()
        self.step = summary["windows"]
        if self.metrics is not None:
            for lang, info in summary["languages"].items():
                self.metrics.add_language(lang, info["reference"])
                self.metrics.count_rows(monitor.window_rows(lang))
            for update in loop.updates if loop is not None else []:
                if update["status"] == "pending":
                    continue  # counted when it is carried out
                self.metrics.updates.labels(update["lang"]).inc()
                self.metrics.decided(update["lang"], update["status"], None)
            self.metrics.watch_counts(monitor.summary)
            port, host = self.settings.metrics_port or 0, self.settings.metrics_host
            self.server = self.metrics.serve(port, host)
            if self.progress:
                print(f"[{self.run_name}] Prometheus metrics on {self.server.url}", file=sys.stderr)
        return self

    def close(self) -> None:
        try:
            self.trackers.close()
        finally:
            if self.server is not None:
                self.server.close()
                self.server = None

    def __enter__(self) -> LoopReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what it is told -------------------------------------------------------------------

    def window(self, report: WindowReport, number: int) -> None:
        """The monitor's ``on_window`` hook: window ``number`` (1-based, over all languages)."""
        self.step = max(self.step, number)
        if self.metrics is not None:
            self.metrics.window(report)
        self.trackers.log(window_values(report), step=self.step)

    def observe(self, updater: Updater) -> Updater:
        """``updater`` reporting each update it carries out and the decision it reaches."""

        def carry_out(update: PlannedUpdate) -> UpdateOutcome:
            self.planned(update)
            outcome = updater(update)
            self.decided(update, outcome)
            return outcome

        return carry_out

    def planned(self, update: PlannedUpdate) -> None:
        if self.metrics is not None:
            self.metrics.updates.labels(update.lang).inc()
        self.trackers.log(planned_values(update), step=self.step)

    def decided(self, update: PlannedUpdate, outcome: UpdateOutcome) -> None:
        gate = gate_metrics(self.store, update)
        if self.metrics is not None:
            self.metrics.decided(update.lang, outcome.status, gate)
            self.metrics.set_version(update.lang, outcome.current)
        self.trackers.log(decision_values(update, outcome, gate), step=self.step)
