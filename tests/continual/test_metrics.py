"""Windows and ECDA decisions as tracker values and Prometheus metrics (no monitor, no model)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from lingualift.continual.loop import PlannedUpdate, UpdateOutcome
from lingualift.continual.metrics import (
    LoopMetrics,
    decision_values,
    planned_values,
    version_number,
    window_values,
)
from lingualift.continual.monitor import WindowReport
from lingualift.continual.stats import TestResult as Result  # not a test class
from lingualift.errors import LingualiftError

pytest.importorskip("prometheus_client")


def report(index, drift, lang="sw", skipped=False):
    if skipped:
        return WindowReport(lang, index, 5, {}, {"drift": False, "skipped": "only 5"}, [], [])
    tests = {
        "js": Result(0.1 * (index + 1), 0.001 if drift else 0.4, threshold=0.2),
        "mmd": Result(0.02, 0.5, threshold=0.05),
        "novelty": Result(0.01, 0.9, threshold=float("inf")),
    }
    return WindowReport(lang, index, 40, tests, {"drift": drift}, [], [], f"{lang}/v1")


def samples(metrics: LoopMetrics) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def update(lang="sw"):
    return PlannedUpdate(
        id=f"{lang}-w00002", lang=lang, window=2, windows=[1, 2], parent=f"{lang}/v1",
        texts=["a", "b", "c"], evidence=[],
    )  # fmt: skip


GATE = {
    "new": {"current": 3.0, "candidate": 2.5, "gain": 0.5},
    "old": {"current": 2.0, "candidate": 2.01, "regret": 0.01},
}


def test_window_and_decision_values_for_trackers():
    values = window_values(report(2, drift=True))
    assert values["monitor/sw/js_pvalue"] == 0.001 and values["monitor/sw/drift"] is True
    assert values["monitor/sw/n"] == 40 and values["monitor/sw/window"] == 2
    assert values["monitor/sw/novelty_threshold"] == float("inf")  # dropped by the trackers
    assert window_values(report(3, False, skipped=True))["monitor/sw/skipped"] is True
    assert planned_values(update())["ecda/sw/usage_queries"] == 3
    decided = decision_values(update(), UpdateOutcome("promoted", "sw/v2", "sw/v2", "ok"), GATE)
    assert decided["ecda/sw/promoted"] is True and decided["ecda/sw/current_version"] == 2
    assert decided["ecda/sw/gain_new"] == 0.5 and decided["ecda/sw/nll_old_candidate"] == 2.01
    kept = decision_values(update(), UpdateOutcome("kept", "sw/v2", "sw/v1", "no"), None)
    assert kept["ecda/sw/promoted"] is False and kept["ecda/sw/gain_new"] is None
    assert version_number("sw/v12") == 12 and version_number(None) is None


def test_prometheus_metrics_per_language():
    metrics = LoopMetrics()
    metrics.add_language("sw", "sw/v1")
    metrics.add_language("yo", None)
    for index, drift in enumerate([False, True]):
        metrics.window(report(index, drift))
    metrics.window(report(2, False, skipped=True))
    metrics.updates.labels("sw").inc()
    metrics.decided("sw", "promoted", GATE)
    metrics.set_version("sw", "sw/v2")
    metrics.watch_counts(
        lambda: {"counts": {"rows": 90, "unsure": 4, "late": 1}, "malformed": {"count": 2}}
    )
    got = samples(metrics)
    sw, yo = (("lang", "sw"),), (("lang", "yo"),)
    assert got[("lingualift_monitor_windows_total", sw)] == 2
    assert got[("lingualift_monitor_alarms_total", sw)] == 1
    assert got[("lingualift_monitor_skipped_windows_total", sw)] == 1
    assert got[("lingualift_monitor_windows_total", yo)] == 0  # shown from the start
    assert got[("lingualift_monitor_pvalue", (("lang", "sw"), ("test", "js")))] == 0.001
    assert got[("lingualift_monitor_threshold", (("lang", "sw"), ("test", "js")))] == 0.2
    assert ("lingualift_monitor_threshold", (("lang", "sw"), ("test", "novelty"))) not in got
    assert got[("lingualift_monitor_window_queries", sw)] == 5  # the last (skipped) window
    assert got[("lingualift_ecda_updates_total", sw)] == 1
    assert got[("lingualift_ecda_promotions_total", sw)] == 1
    assert got[("lingualift_ecda_kept_total", sw)] == 0
    assert got[("lingualift_ecda_gate_gain", sw)] == 0.5
    assert got[("lingualift_current_version", sw)] == 2
    assert ("lingualift_current_version", yo) not in got
    assert got[("lingualift_monitor_rows_total", ())] == 90
    assert got[("lingualift_monitor_skipped_rows_total", (("reason", "unsure"),))] == 4
    assert got[("lingualift_monitor_skipped_rows_total", (("reason", "malformed"),))] == 2
    assert got[("lingualift_monitor_skipped_rows_total", (("reason", "no_text"),))] == 0


def test_served_over_http_and_closed():
    metrics = LoopMetrics()
    metrics.add_language("sw", "sw/v3")
    server = metrics.serve(0)
    try:
        body = urllib.request.urlopen(server.url, timeout=10).read().decode()
        assert 'lingualift_current_version{lang="sw"} 3.0' in body
        with pytest.raises(LingualiftError, match="choose another metrics_port"):
            metrics.serve(server.port)
    finally:
        server.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url, timeout=5)
