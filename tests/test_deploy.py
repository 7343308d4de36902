"""deploy/: the Grafana dashboard is valid and asks only for metrics the code exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytest.importorskip("prometheus_client")

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "lingualift.json"
METRIC = re.compile(r"\b(lingualift_[a-z0-9_]+)(\{[^}]*\})?")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def exposed() -> dict[str, set[str]]:
    """Every sample name the server and the monitor/ECDA loop can expose -> its label names,
    after exercising each labelled metric once so that its labels show."""
    from lingualift.continual.loop import PlannedUpdate, UpdateOutcome
    from lingualift.continual.metrics import LoopReporter
    from lingualift.continual.monitor import WindowReport
    from lingualift.continual.stats import TestResult as Result
    from lingualift.continual.watch import WatchSettings
    from lingualift.serving.metrics import ServingMetrics

    serving = ServingMetrics()
    serving.requests.labels("/v1/completions", "200").inc()
    serving.latency.labels("/v1/completions").observe(0.1)
    serving.by_language.labels("sw").inc()
    serving.by_adapter.labels("sw/v1").inc()
    serving.fallbacks.labels("unsure").inc()
    serving.on_reload_event("loaded", "sw", None)
    serving.on_reload_event("failed", "sw", "damaged")

    settings = WatchSettings(report_to="none", metrics_port=0)  # served only once started
    reporter = LoopReporter(settings, Path("unused"), "test")
    loop = reporter.metrics
    loop.add_language("sw", "sw/v1")
    tests = {name: Result(0.1, 0.5, threshold=0.2) for name in ("js", "mmd", "novelty")}
    reporter.window(WindowReport("sw", 0, 40, tests, {"drift": True}, [], [], "sw/v1"), 1)
    reporter.window(WindowReport("sw", 1, 5, {}, {"drift": False, "skipped": "small"}, [], []), 2)
    loop.watch_counts(lambda: {"counts": {"rows": 1}, "malformed": {"count": 0}})
    update = PlannedUpdate("sw-w00000", "sw", 0, [0], "sw/v1", [], [])
    reporter.planned(update)
    reporter.decided(update, UpdateOutcome("promoted", "sw/v2", "sw/v2", "ok"))
    loop.decided("sw", "kept", {"new": {"gain": 0.1}, "old": {"regret": 0.0}})

    names: dict[str, set[str]] = {}
    for registry in (serving.registry, loop.registry):
        for family in registry.collect():
            for suffix in SUFFIXES.get(family.type, ("",)):
                names.setdefault(family.name + suffix, set())
            for sample in family.samples:
                names.setdefault(sample.name, set()).update(sample.labels)
    return names


def queries(dashboard: dict) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets, variables, annotations."""
    found = []

    def walk(panels):
        for panel in panels:
            found.extend(t["expr"] for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["query"]["query"])
    found.extend(a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a)
    return found


def test_the_dashboard_is_grafana_json_with_prometheus_panels():
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    source = {"type": "prometheus", "uid": "${datasource}"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    graphs = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(graphs) >= 20 and {p["type"] for p in graphs} <= {"timeseries", "stat"}
    for panel in graphs:
        where = panel["gridPos"]
        assert where["x"] + where["w"] <= 24 and where["h"] > 0, panel["title"]
        assert panel["datasource"] == source and panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) and all(
            t["datasource"] == source for t in panel["targets"]
        )
    # Panels on one row do not overlap.
    cells = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


def test_every_metric_and_label_in_the_dashboard_exists_in_the_code():
    names = exposed()
    used = set()
    for expr in queries(json.loads(DASHBOARD.read_text("utf-8"))):
        in_expr = set()
        for name, selector in METRIC.findall(expr):
            assert name in names, f"{name} (in {expr}) is exposed by no lingualift code"
            in_expr |= names[name]
            for label in MATCHER.findall(selector or ""):
                assert label in names[name], f"{name} has no label {label!r} (in {expr})"
            used.add(name)
        for group in GROUPING.findall(expr):
            for label in filter(None, (x.strip() for x in group.split(","))):
                assert label in in_expr, f"no metric of {expr} has the label {label!r}"
    # Every metric of the loop and of the server has a panel (the created-time series aside).
    shown = {n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for n in used}
    families = {n for n in names if not n.endswith(("_created", "_bucket", "_sum", "_count"))}
    histograms = {n.removesuffix("_bucket") for n in names if n.endswith("_bucket")}
    missing = {n for n in families | histograms if n not in shown and n not in used}
    assert not missing, f"metrics without a panel: {sorted(missing)}"


def test_the_queries_and_the_scrape_config_pass_promtool(tmp_path):
    """Prometheus's own checker parses every expression (as recording rules) and the config."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    rules = []
    for i, expr in enumerate(queries(json.loads(DASHBOARD.read_text("utf-8")))):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        expr = expr.replace("$lang", ".*")
        expr = re.sub(r"^label_values\((.+),\s*\w+\)$", r"\1", expr)  # Grafana's, not PromQL
        rules.append({"record": f"lingualift:dashboard_query_{i}", "expr": expr})
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = DEPLOY / "prometheus" / "prometheus.yml"
    checked = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
