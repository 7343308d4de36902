"""The dashboard's web app: one page of the whole loop, its data as JSON, and the guarded rollback.

Routes:

- ``GET /``: the page (``?lang=sw`` for one language), re-read from the files on
  every load; the page reloads itself every ``refresh_s`` seconds (a few lines of
  inline script that wait while a field has the focus);
- ``GET /api/overview``: the same data as JSON (:class:`~lingualift.dashboard.views.Overview`);
- ``GET /health``;
- ``POST /actions/rollback``: ``lang`` and the key (form field ``api_key``, or
  ``Authorization: Bearer <key>``); 403 when the dashboard is read-only, 401 for a
  wrong key. A browser's form is redirected back to the page; an API client gets
  the :class:`~lingualift.dashboard.actions.ActionRecord` as JSON.

Templates are Jinja2 with autoescaping on: query texts from the traffic log are
user input and are shown as text, never as markup.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from lingualift.dashboard import svg
from lingualift.dashboard.actions import Actions
from lingualift.dashboard.views import LoopReader, Overview
from lingualift.dashboard.windows import TEST_NAMES, TESTS

MAX_FORM_BYTES = 16_384
MAX_WINDOW_ROWS = 100
"""Windows listed in a language's table (the newest; the charts and the JSON have them all)."""


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("lingualift.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _format_number
    env.filters["short_time"] = _short_time
    env.filters["time_range"] = _time_range
    return env


def _format_number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def _short_time(value: Any) -> str:
    """``2026-03-02T09:00:00+00:00`` -> ``2026-03-02 09:00:00`` (times are UTC)."""
    if not isinstance(value, str):
        return "–"
    return value.replace("T", " ").split("+")[0].removesuffix("Z").split(".")[0]


def _time_range(start: Any, end: Any) -> str:
    """A window's span: the date once when both ends share it."""
    first, last = _short_time(start), _short_time(end)
    if first[:10] == last[:10] and len(last) > 11:
        return f"{first} – {last[11:]}"
    return f"{first} – {last}"


def charts(overview: Overview) -> dict[str, Any]:
    """Every chart of the page as SVG markup, by language."""
    traffic = overview.traffic
    out: dict[str, Any] = {"languages": {}}
    if traffic is not None:
        by_lang = {
            lang: [sum(values) for values in zip(*series.values(), strict=True)]
            for lang, series in traffic.counts.items()
        }
        out["traffic"] = Markup(svg.traffic_chart(
            by_lang, traffic.bucket_starts(), traffic.bucket_seconds,
            "requests per language (every adapter and the base model)",
        ))  # fmt: skip
    for view in overview.languages:
        mine: dict[str, Any] = {"lineage": Markup(svg.lineage_chart(view.lineage))}
        if traffic is not None:
            mine["traffic"] = Markup(svg.traffic_chart(
                traffic.counts.get(view.lang, {}), traffic.bucket_starts(),
                traffic.bucket_seconds, f"{view.lang}: requests per adapter",
                svg.decision_events(view.lineage),
            ))  # fmt: skip
        if view.windows:
            mine["pvalues"] = Markup(svg.pvalue_chart(
                view.windows, f"{view.lang}: p-values per window against the Holm level alpha/3"
            ))  # fmt: skip
            mine["statistics"] = [
                Markup(svg.statistic_chart(view.windows, test, f"{view.lang}: {name} vs threshold"))
                for test, name in TEST_NAMES.items()
            ]
        out["languages"][view.lang] = mine
    return out


def create_dashboard_app(
    reader: LoopReader, *, actions: Actions | None = None, refresh_s: float = 15.0
) -> FastAPI:
    """The app over ``reader``; ``actions`` (None: read-only) enables rollback."""
    app = FastAPI(title="lingualift dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    env = _environment()
    page = env.get_template("page.html")

    @app.get("/", response_class=HTMLResponse)
    def index(lang: str | None = None) -> HTMLResponse:
        overview = reader.overview()
        if lang:
            overview.languages = [v for v in overview.languages if v.lang == lang]
        html = page.render(
            overview=overview,
            charts=charts(overview),
            actions=actions,
            recent_actions=actions.recent() if actions else [],
            refresh_s=refresh_s,
            tests=TESTS,
            test_names=TEST_NAMES,
            only=lang,
            max_rows=MAX_WINDOW_ROWS,
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @app.get("/api/overview")
    def api_overview() -> JSONResponse:
        return JSONResponse(dataclasses.asdict(reader.overview()))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/actions/rollback")
    async def rollback(request: Request) -> Response:
        form = await _form(request)
        wants_json = "authorization" in request.headers
        if actions is None:
            return _refusal(wants_json, 403, "This dashboard is read-only; start it with "
                            "allow_actions=true and an API key to roll back from here.")  # fmt: skip
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token if scheme.lower() == "bearer" else form.get("api_key")
        if not actions.authorized(key):
            return _refusal(wants_json, 401, "Wrong or missing API key; give the key the "
                            "dashboard was started with.")  # fmt: skip
        lang = form.get("lang") or request.query_params.get("lang")
        if not lang:
            return _refusal(wants_json, 400, "Say which language to roll back (lang=...).")
        client = request.client.host if request.client else None
        record = actions.rollback(lang, client=client)
        if wants_json:
            return JSONResponse(dataclasses.asdict(record), status_code=200 if record.ok else 409)
        return RedirectResponse(f"/#lang-{urllib.parse.quote(lang)}", status_code=303)

    return app


async def _form(request: Request) -> dict[str, str]:
    """A url-encoded form or a JSON object's text fields (bounded in size)."""
    body = (await request.body())[:MAX_FORM_BYTES]
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return {}
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}


def _refusal(wants_json: bool, status: int, message: str) -> Response:
    if wants_json:
        return JSONResponse({"error": message}, status_code=status)
    html = (
        "<!doctype html><meta charset='utf-8'><title>lingualift dashboard</title>"
        f"<p>{Markup.escape(message)}</p><p><a href='/'>Back to the dashboard</a></p>"
    )
    return HTMLResponse(html, status_code=status)
