"""The charts: well-formed SVG with the marks the data asks for, text escaped."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from lingualift.dashboard import svg
from lingualift.dashboard.lineage import read_lineage
from lingualift.dashboard.traffic import BASE_MODEL, TrafficReader
from lingualift.dashboard.windows import read_monitor

from .conftest import T0, make_store

NS = {"s": "http://www.w3.org/2000/svg"}


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # raises on anything that is not well-formed


def test_traffic_chart_stacks_a_bar_per_nonzero_count(loop_files):
    series = TrafficReader(loop_files.traffic).read()
    counts = series.counts["sw"]
    events = [(T0 + 55, "promote v2", "#2ca02c"), (T0 - 3600, "promote v1", "#2ca02c")]
    root = parse(svg.traffic_chart(counts, series.bucket_starts(), series.bucket_seconds,
                                   "sw <requests>", events))  # fmt: skip
    bars = root.findall(".//s:rect[@class='bar']", NS)
    assert len(bars) == sum(1 for values in counts.values() for v in values if v)
    assert {b.get("fill") for b in bars} == {svg.PALETTE[0], svg.PALETTE[1]}
    assert root.find("s:title", NS).text == "sw <requests>"  # escaped in the markup, read back
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "promote v2" in texts and "promote v1" not in texts  # only events inside the range
    assert all(float(b.get("height")) > 0 for b in bars)


def test_the_base_model_is_grey_and_an_empty_log_says_so():
    assert svg.colours(["sw/v1", BASE_MODEL, "sw/v2"]) == {
        "sw/v1": svg.PALETTE[0], BASE_MODEL: svg.BASE_COLOUR, "sw/v2": svg.PALETTE[1]
    }  # fmt: skip
    assert "no requests" in svg.traffic_chart({}, [], 1, "empty")


def test_pvalue_chart_marks_the_level_drift_and_reference(loop_files):
    windows = read_monitor(loop_files.ecda).for_lang("sw")
    markup = svg.pvalue_chart(windows, "p-values")
    root = parse(markup)
    assert len(root.findall(".//s:rect[@class='drift']", NS)) == 1
    level = root.find(".//s:line[@class='level']", NS)
    assert level is not None
    # The p = 0 of the novelty test sits on the floor, not at minus infinity.
    points = [float(v) for p in root.iter("{http://www.w3.org/2000/svg}polyline")
              for pair in p.get("points").split() for v in pair.split(",")]  # fmt: skip
    assert all(math.isfinite(v) for v in points)
    assert "ref sw/v1" in markup and "ref sw/v2" in markup
    tips = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "window 2: novelty p = 0 (level 0.0167, rejected)" in tips


def test_statistic_chart_draws_the_threshold(loop_files):
    windows = read_monitor(loop_files.ecda).for_lang("sw")
    root = parse(svg.statistic_chart(windows, "js", "js"))
    assert root.find(".//s:polyline[@class='threshold']", NS) is not None
    assert len(root.findall(".//s:circle[@class='point']", NS)) == 4
    assert "no mmd statistic" in svg.statistic_chart([], "mmd", "mmd")


def test_lineage_chart_has_a_node_per_version_and_an_edge_per_parent(tmp_path):
    lineage = read_lineage(make_store(tmp_path / "store"), "sw")
    root = parse(svg.lineage_chart(lineage))
    nodes = root.findall(".//s:circle[@class='node']", NS)
    assert len(nodes) == 3 and len(root.findall(".//s:path[@class='edge']", NS)) == 2
    states = [n.find("s:title", NS).text.split(": ")[1].split(";")[0] for n in nodes]
    assert states == ["stored", "current", "kept out by the gate"]
    assert [e[1] for e in svg.decision_events(lineage)] == ["promote v2"]


def test_bucket_label():
    assert [svg.bucket_label(s) for s in (1, 5, 120, 21600, 604800)] == [
        "second", "5 s", "2 min", "6 h", "7 d"
    ]  # fmt: skip
