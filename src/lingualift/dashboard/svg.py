"""The dashboard's charts as inline SVG, drawn on the server: no JavaScript, no CDN, works offline.

Every chart is a function from the dashboard's dataclasses to one ``<svg>``
string (escaped text, a ``<title>`` tooltip on every mark, a ``viewBox`` so it
scales with the page):

- :func:`traffic_chart`: requests per time bucket, stacked by adapter (a
  language's own, or every language's on the overview), with the store's
  promotions and rollbacks marked where they fall inside the time range;
- :func:`pvalue_chart`: each window's three p-values on a log axis against the
  Holm level alpha/3 that the smallest must reach, drifting windows shaded and
  the reference version named above each window;
- :func:`statistic_chart`: one test's statistic per window against its
  threshold (its critical value at alpha/3);
- :func:`lineage_chart`: the versions as nodes, parent links as arrows, the
  current version and each decision's outcome marked.

Server-side SVG rather than a vendored JavaScript chart library: the page stays
readable with scripts off, a chart is testable as text, and nothing is added to
the package but these few hundred lines.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from html import escape

from lingualift.dashboard.lineage import Lineage, parse_time
from lingualift.dashboard.traffic import BASE_MODEL
from lingualift.dashboard.windows import TEST_NAMES, WindowStat

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#d62728")  # fmt: skip
"""Series colours (matplotlib's tab10, so the dashboard matches the repo's PNG plots)."""
BASE_COLOUR = "#b0b0b0"
TEST_COLOURS = {"js": "#1f77b4", "mmd": "#ff7f0e", "novelty": "#2ca02c"}
TEST_MARKS = {"js": "circle", "mmd": "square", "novelty": "triangle"}
DRIFT_FILL = "#d62728"
P_FLOOR = 1e-4
"""The lowest p-value drawn (a p-value of 0, e.g. a novelty test with no tail left, sits here)."""

WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 26, 38


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg(body: list[str], label: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'style="max-width: {width}px" role="img" aria-label="{escape(label)}" '
        'font-family="sans-serif" font-size="11">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _attrs(attrs: dict[str, str]) -> str:
    """SVG attributes from keyword names: ``font_weight`` -> ``font-weight``, ``class_`` ->
    ``class``."""
    return "".join(f' {k.rstrip("_").replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())


def _text(x: float, y: float, text: str, anchor: str = "start", **attrs: str) -> str:
    extra = _attrs(attrs)
    return f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, **attrs: str) -> str:
    extra = _attrs(attrs)
    return (
        f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" '
        f'stroke="{colour}"{extra}/>'
    )


def _empty(label: str, why: str) -> str:
    return _svg([_text(WIDTH / 2, HEIGHT / 2, why, "middle", fill="#666")], label, height=80)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def colours(labels: Sequence[str]) -> dict[str, str]:
    """A colour per series label; the base model is always grey."""
    out, i = {}, 0
    for label in labels:
        if label == BASE_MODEL:
            out[label] = BASE_COLOUR
        else:
            out[label] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def _time_label(seconds: float, span: float) -> str:
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    if span < 120:
        return moment.strftime("%H:%M:%S")
    if span < 86400:
        return moment.strftime("%H:%M")
    return moment.strftime("%m-%d %H:%M")


def _legend(entries: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    out = []
    for i, (label, colour) in enumerate(entries):
        top = y + i * 16
        out.append(f'<rect x="{_num(x)}" y="{_num(top)}" width="10" height="10" fill="{colour}"/>')
        out.append(_text(x + 14, top + 9, label))
    return out


def bucket_label(seconds: int) -> str:
    """A bucket's width in words: 'second', '5 s', '2 min', '6 h', '7 d'."""
    if seconds == 1:
        return "second"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def traffic_chart(
    series: dict[str, list[int]],
    starts: Sequence[float],
    bucket_seconds: int,
    label: str,
    events: Sequence[tuple[float, str, str]] = (),
) -> str:
    """Stacked bars of requests per bucket, one colour per series (module docstring).

    ``events``: (time, text, colour) marks, drawn when inside the chart's time range.
    """
    if not starts or not series:
        return _empty(label, "no requests in the traffic log yet")
    names = sorted(series, key=lambda s: (s == BASE_MODEL, s))
    palette = colours(names)
    n = len(starts)
    totals = [sum(series[s][i] for s in names) for i in range(n)]
    top_value = nice_ceiling(max(totals))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bar_w = plot_w / n

    def y_of(value: float) -> float:
        return TOP + plot_h * (1 - value / top_value)

    body = [_text(LEFT, 16, label, font_weight="bold")]
    for tick in (0, top_value / 2, top_value):
        body.append(_line(LEFT, y_of(tick), LEFT + plot_w, y_of(tick), "#e5e5e5"))
        body.append(_text(LEFT - 6, y_of(tick) + 4, _num(tick), "end"))
    per = bucket_label(bucket_seconds)
    body.append(_text(12, TOP + plot_h / 2, f"requests per {per}", "middle",
                      transform=f"rotate(-90 12 {_num(TOP + plot_h / 2)})"))  # fmt: skip
    for i in range(n):
        base = 0
        when = _time_label(starts[i], bucket_seconds * n)
        for name in names:
            count = series[name][i]
            if not count:
                continue
            y_top, y_bottom = y_of(base + count), y_of(base)
            body.append(
                f'<rect class="bar" x="{_num(LEFT + i * bar_w + 0.5)}" y="{_num(y_top)}" '
                f'width="{_num(max(bar_w - 1, 0.5))}" height="{_num(y_bottom - y_top)}" '
                f'fill="{palette[name]}"><title>{escape(f"{when} UTC: {count} by {name}")}'
                "</title></rect>"
            )
            base += count
    span = bucket_seconds * n
    for k in range(0, n, max(1, math.ceil(n / 6))):
        x = LEFT + k * bar_w
        body.append(_line(x, TOP + plot_h, x, TOP + plot_h + 4, "#666"))
        body.append(_text(x, TOP + plot_h + 16, _time_label(starts[k], span), "middle"))
    body.append(_text(LEFT + plot_w, HEIGHT - 6, "UTC", "end", fill="#666"))
    begin, end = starts[0], starts[-1] + bucket_seconds
    for when, text, colour in events:
        if begin <= when <= end:
            x = LEFT + plot_w * (when - begin) / (end - begin)
            body.append(_line(x, TOP, x, TOP + plot_h, colour, stroke_width="2",
                              stroke_dasharray="4 3"))  # fmt: skip
            body.append(_text(x + 3, TOP + 10, text, fill=colour))
    body.append(_line(LEFT, TOP + plot_h, LEFT + plot_w, TOP + plot_h, "#666"))
    body += _legend([(name, palette[name]) for name in names], LEFT + plot_w + 14, TOP)
    return _svg(body, label)


def _mark(kind: str, x: float, y: float, colour: str, filled: bool, tip: str) -> str:
    fill = colour if filled else "white"
    style = f'fill="{fill}" stroke="{colour}" stroke-width="1.5" class="point"'
    title = f"<title>{escape(tip)}</title>"
    if kind == "square":
        return (
            f'<rect x="{_num(x - 4)}" y="{_num(y - 4)}" width="8" height="8" {style}>{title}</rect>'
        )
    if kind == "triangle":
        points = f"{_num(x)},{_num(y - 5)} {_num(x - 5)},{_num(y + 4)} {_num(x + 5)},{_num(y + 4)}"
        return f'<polygon points="{points}" {style}>{title}</polygon>'
    return f'<circle cx="{_num(x)}" cy="{_num(y)}" r="4" {style}>{title}</circle>'


def _window_axis(windows: Sequence[WindowStat], plot_w: float) -> list[float]:
    n = len(windows)
    step = plot_w / max(n, 1)
    return [LEFT + step * (i + 0.5) for i in range(n)]


def _window_frame(
    windows: Sequence[WindowStat], xs: list[float], plot_h: float, plot_w: float
) -> list[str]:
    """Drifting windows shaded, window numbers below, the reference version above each window
    where it changes."""
    body = []
    step = plot_w / max(len(windows), 1)
    previous = None
    for window, x in zip(windows, xs, strict=True):
        if window.drift:
            body.append(
                f'<rect class="drift" x="{_num(x - step / 2)}" y="{TOP}" width="{_num(step)}" '
                f'height="{_num(plot_h)}" fill="{DRIFT_FILL}" fill-opacity="0.12">'
                f"<title>window {window.window}: drift ({', '.join(window.rejected)})</title></rect>"
            )
        if window.reference != previous:
            body.append(_line(x - step / 2, TOP, x - step / 2, TOP + plot_h, "#444",
                              stroke_dasharray="2 2"))  # fmt: skip
            body.append(
                _text(
                    x - step / 2 + 3,
                    TOP + 11,
                    f"ref {window.reference}",
                    fill="#444",
                    font_size="10",
                )
            )
            previous = window.reference
    every = max(1, math.ceil(len(windows) / 12))
    for i, (window, x) in enumerate(zip(windows, xs, strict=True)):
        if i % every == 0:
            body.append(_text(x, TOP + plot_h + 16, str(window.window), "middle"))
    body.append(_text(LEFT + plot_w / 2, HEIGHT - 6, "window", "middle", fill="#666"))
    return body


def pvalue_chart(windows: Sequence[WindowStat], label: str) -> str:
    """The three p-values per window against alpha/3 on a log axis (module docstring)."""
    tested = [w for w in windows if w.tests]
    if not tested:
        return _empty(label, "no tested window yet")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    low = math.log10(P_FLOOR)

    def y_of(p: float) -> float:
        return TOP + plot_h * (math.log10(max(p, P_FLOOR)) / low)

    xs = _window_axis(tested, plot_w)
    body = [_text(LEFT, 14, label, font_weight="bold")]
    for exponent in range(0, int(low) - 1, -1):
        y = y_of(10.0**exponent)
        body.append(_line(LEFT, y, LEFT + plot_w, y, "#e5e5e5"))
        body.append(_text(LEFT - 6, y + 4, "1" if exponent == 0 else f"1e{exponent}", "end"))
    body.append(_text(12, TOP + plot_h / 2, "p-value", "middle",
                      transform=f"rotate(-90 12 {_num(TOP + plot_h / 2)})"))  # fmt: skip
    body += _window_frame(tested, xs, plot_h, plot_w)
    levels = [w.first_level for w in tested if w.first_level]
    if levels:
        level = min(levels)
        y = y_of(level)
        body.append(_line(LEFT, y, LEFT + plot_w, y, "#d62728", stroke_width="1.5",
                          stroke_dasharray="6 4", class_="level"))  # fmt: skip
        body.append(
            _text(LEFT + plot_w - 4, y - 4, f"alpha/3 = {level:.3g}", "end", fill="#d62728")
        )
    for name, colour in TEST_COLOURS.items():
        points = [
            (x, w.tests[name].pvalue, w)
            for x, w in zip(xs, tested, strict=True)
            if name in w.tests and w.tests[name].pvalue is not None
        ]
        if not points:
            continue
        path = " ".join(f"{_num(x)},{_num(y_of(p))}" for x, p, _ in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for x, p, window in points:
            test = window.tests[name]
            tip = (f"window {window.window}: {name} p = {p:.3g} (level {test.level:.3g}"
                   f"{', rejected' if test.rejected else ''})")  # fmt: skip
            body.append(_mark(TEST_MARKS[name], x, y_of(p), colour, test.rejected, tip))
    entries = [(f"{name} p-value", colour) for name, colour in TEST_COLOURS.items()]
    body += _legend([*entries, ("drifting window", "#f4c7c7")], LEFT + plot_w + 14, TOP + 24)
    body.append(_text(LEFT + plot_w + 14, TOP + 24 + 16 * 4 + 12, "filled: rejected", fill="#666"))
    return _svg(body, label)


def statistic_chart(windows: Sequence[WindowStat], test: str, label: str) -> str:
    """One test's statistic per window against its threshold (module docstring)."""
    tested = [w for w in windows if test in w.tests and w.tests[test].statistic is not None]
    if not tested:
        return _empty(label, f"no {test} statistic yet")
    height = 170
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    values = [w.tests[test].statistic or 0.0 for w in tested]
    thresholds = [w.tests[test].threshold for w in tested]
    top_value = nice_ceiling(max([*values, *(t for t in thresholds if t is not None)]))
    bottom = min(0.0, *values)

    def y_of(v: float) -> float:
        return TOP + plot_h * (1 - (v - bottom) / (top_value - bottom))

    xs = _window_axis(tested, plot_w)
    body = [_text(LEFT, 14, label, font_weight="bold")]
    for tick in (bottom, top_value):
        body.append(_line(LEFT, y_of(tick), LEFT + plot_w, y_of(tick), "#e5e5e5"))
        body.append(_text(LEFT - 6, y_of(tick) + 4, f"{tick:.3g}", "end"))
    for i, window in enumerate(tested):
        if window.drift:
            step = plot_w / len(tested)
            body.append(
                f'<rect class="drift" x="{_num(xs[i] - step / 2)}" y="{TOP}" width="{_num(step)}" '
                f'height="{_num(plot_h)}" fill="{DRIFT_FILL}" fill-opacity="0.12"/>'
            )
    limit = [(x, t) for x, t in zip(xs, thresholds, strict=True) if t is not None]
    if limit:
        path = " ".join(f"{_num(x)},{_num(y_of(t))}" for x, t in limit)
        body.append(f'<polyline class="threshold" points="{path}" fill="none" stroke="#d62728" '
                    'stroke-width="1.5" stroke-dasharray="6 4"/>')  # fmt: skip
    colour = TEST_COLOURS[test]
    path = " ".join(f"{_num(x)},{_num(y_of(v))}" for x, v in zip(xs, values, strict=True))
    body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    for x, window in zip(xs, tested, strict=True):
        result = window.tests[test]
        threshold = "none" if result.threshold is None else f"{result.threshold:.4g}"
        tip = f"window {window.window}: {test} = {result.statistic:.4g}, threshold {threshold}"
        body.append(_mark(TEST_MARKS[test], x, y_of(result.statistic or 0.0), colour,
                          result.rejected, tip))  # fmt: skip
    every = max(1, math.ceil(len(tested) / 12))
    for i, (window, x) in enumerate(zip(tested, xs, strict=True)):
        if i % every == 0:
            body.append(_text(x, TOP + plot_h + 16, str(window.window), "middle"))
    body += _legend([(TEST_NAMES[test], colour), ("threshold at alpha/3", "#d62728")],
                    LEFT + plot_w + 14, TOP)  # fmt: skip
    return _svg(body, label, height=height)


def lineage_chart(lineage: Lineage) -> str:
    """Versions as nodes in order, an arrow from each parent, the current version outlined."""
    label = f"versions of {lineage.lang}"
    if not lineage.versions:
        return _empty(label, "no stored version")
    kept = {d.version for d in lineage.decisions if d.action == "keep"}
    promoted = {d.version for d in lineage.decisions if d.action in ("promote", "save")}
    n = len(lineage.versions)
    gap = min(120.0, (WIDTH - 80) / max(n, 1))
    height = 120
    x_of = {v.version: 50 + gap * i for i, v in enumerate(lineage.versions)}
    y = 64
    body = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#666"/></marker></defs>'
    ]
    for node in lineage.versions:
        if node.parent is None or node.parent not in x_of:
            continue
        x1, x2 = x_of[node.parent], x_of[node.version]
        bend = y - 18 - 10 * min(abs(node.version - node.parent) - 1, 3)
        body.append(
            f'<path class="edge" d="M{_num(x1 + 14)},{y - 10} Q{_num((x1 + x2) / 2)},{_num(bend - 14)} '
            f'{_num(x2 - 14)},{y - 10}" fill="none" stroke="#666" marker-end="url(#arrow)">'
            f"<title>{escape(f'v{node.version} trained from v{node.parent}')}</title></path>"
        )
    for node in lineage.versions:
        x = x_of[node.version]
        if node.problem:
            fill, stroke, state = "#fbe3e3", "#d62728", "damaged"
        elif node.current:
            fill, stroke, state = "#2ca02c", "#1b641b", "current"
        elif node.version in kept and node.version not in promoted:
            fill, stroke, state = "#eeeeee", "#999999", "kept out by the gate"
        else:
            fill, stroke, state = "#dbe9f6", "#1f77b4", "stored"
        width = "3" if node.current else "1.5"
        tip = f"{node.name}: {state}; {node.origin}; created {node.created or '?'}"
        body.append(
            f'<circle class="node" cx="{_num(x)}" cy="{y}" r="16" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="{width}"><title>{escape(tip)}</title></circle>'
        )
        body.append(_text(x, y + 4, f"v{node.version}", "middle",
                          fill="white" if node.current else "#222", font_weight="bold"))  # fmt: skip
        body.append(_text(x, y + 32, state, "middle", fill="#444", font_size="10"))
    width = int(max(x_of.values()) + 70)
    return _svg(body, label, width=max(width, 200), height=height)


def decision_events(lineage: Lineage) -> list[tuple[float, str, str]]:
    """The pointer moves of a lineage as chart events (time, text, colour)."""
    events = []
    for decision in lineage.decisions:
        when = parse_time(decision.time)
        if when is None or decision.action not in ("promote", "rollback"):
            continue
        colour = "#2ca02c" if decision.action == "promote" else "#d62728"
        events.append((when, f"{decision.action} v{decision.current}", colour))
    return events
