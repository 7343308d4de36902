"""The dashboard's app without a browser: the page, the JSON, the guarded rollback, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lingualift.adapters.store import AdapterStore
from lingualift.cli import main
from lingualift.dashboard.config import API_KEY_ENV, DashboardConfig
from lingualift.dashboard.server import build_dashboard
from lingualift.errors import LingualiftError


def client(loop_files, **options) -> TestClient:
    config = DashboardConfig(store=str(loop_files.store), traffic=str(loop_files.traffic),
                             monitor=str(loop_files.ecda), **options)  # fmt: skip
    return TestClient(build_dashboard(config))


def test_the_page_shows_the_loop_read_only(loop_files):
    page = client(loop_files).get("/")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    html = page.text
    assert 'id="lang-sw"' in html and 'data-current="sw/v2"' in html and 'id="lang-hi"' in html
    assert html.count('class="decision"') == 4  # sw: save, promote, keep; hi: save
    assert "update sw-w00002" in html and "gain <b" in html and "tolerance 0.02" in html
    assert html.count('class="window drift"') == 1 and 'id="sw-w2"' in html
    assert html.count("<svg") >= 8  # overview traffic; sw and hi: lineage, traffic; sw: p + 3
    assert "read-only" in html and "/actions/rollback" not in html
    # Queries are user input: shown as text, never as markup.
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    assert "1 segment(s) still being written are not read yet" in html


def test_one_language_and_the_json(loop_files):
    app = client(loop_files)
    html = app.get("/", params={"lang": "hi"}).text
    assert 'id="lang-hi"' in html and 'id="lang-sw"' not in html
    data = app.get("/api/overview").json()
    assert [v["lang"] for v in data["languages"]] == ["hi", "sw"]
    sw = data["languages"][1]
    assert sw["lineage"]["current"] == 2 and len(sw["windows"]) == 4
    assert data["traffic"]["counts"]["sw"].keys() == {"sw/v1", "sw/v2"}
    assert app.get("/health").json() == {"status": "ok"}


def test_rollback_is_refused_on_a_read_only_dashboard(loop_files):
    app = client(loop_files)
    assert app.post("/actions/rollback", data={"lang": "sw", "api_key": "x"}).status_code == 403
    refused = app.post(
        "/actions/rollback", json={"lang": "sw"}, headers={"Authorization": "Bearer x"}
    )
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    assert AdapterStore(loop_files.store).current_version("sw") == 2


def test_rollback_with_the_key_calls_the_store_and_is_logged(loop_files):
    app = client(loop_files, allow_actions=True, api_key="s3cret")
    html = app.get("/").text
    assert "actions enabled" in html and "Roll back sw/v2 → v1" in html
    assert 'name="api_key"' in html and 'type="password"' in html
    wrong = app.post("/actions/rollback", data={"lang": "sw", "api_key": "guess"})
    assert wrong.status_code == 401 and AdapterStore(loop_files.store).current_version("sw") == 2
    done = app.post("/actions/rollback", data={"lang": "sw", "api_key": "s3cret"},
                    follow_redirects=False)  # fmt: skip
    assert done.status_code == 303 and done.headers["location"] == "/#lang-sw"
    store = AdapterStore(loop_files.store)
    assert store.current_version("sw") == 1 and store.history("sw")[-1]["action"] == "rollback"
    log = [
        json.loads(x)
        for x in (loop_files.store / "dashboard-actions.jsonl").read_text().splitlines()
    ]
    assert [(r["action"], r["lang"], r["ok"], r["before"], r["after"]) for r in log] == [
        ("rollback", "sw", True, 2, 1)
    ]  # fmt: skip
    html = app.get("/").text
    assert 'id="recent-actions"' in html and "sw rolled back from v2 to v1" in html
    # An API client: Bearer key, JSON back; a rollback with nothing left is refused and logged.
    again = app.post("/actions/rollback", json={"lang": "sw"},
                     headers={"Authorization": "Bearer s3cret"})  # fmt: skip
    assert again.status_code == 409 and not again.json()["ok"]
    assert "no earlier current version" in again.json()["message"]
    assert len((loop_files.store / "dashboard-actions.jsonl").read_text().splitlines()) == 2
    assert "Nothing to roll back to" in app.get("/").text


def test_refusals_in_one_sentence(loop_files, tmp_path, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(LingualiftError, match="does not exist; point store="):
        build_dashboard(DashboardConfig(store=str(tmp_path / "nowhere")))
    with pytest.raises(LingualiftError, match="allow_actions=true needs an API key"):
        build_dashboard(DashboardConfig(store=str(loop_files.store), allow_actions=True))
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    app = client(loop_files, allow_actions=True)
    assert app.post("/actions/rollback", data={"lang": "sw", "api_key": "from-env"},
                    follow_redirects=False).status_code == 303  # fmt: skip
    with pytest.raises(LingualiftError, match="port must be in"):
        DashboardConfig(port=70000)


def test_the_verb_refuses_a_missing_store_with_exit_2(tmp_path, capsys):
    assert main(["dashboard", f"store={tmp_path / 'nowhere'}", "port=0"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "does not exist" in errors[0]


def test_files_that_appear_later_are_read_on_the_next_load(loop_files):
    app = client(loop_files)
    assert 'data-current="sw/v2"' in app.get("/").text
    AdapterStore(loop_files.store).rollback("sw")  # e.g. 'lingualift adapters rollback sw'
    partial = loop_files.traffic / "traffic-20260101T100200Z-000003.jsonl.partial"
    partial.rename(partial.with_name(partial.name.removesuffix(".partial")))
    data = app.get("/api/overview").json()
    assert data["languages"][1]["lineage"]["current"] == 1
    assert data["traffic"]["segments"] == 3 and data["traffic"]["open_segments"] == 0


def test_the_verb_serves_the_page_until_sigterm(loop_files):
    """The command in docs/continual.md, as a process: it prints its address, serves the page,
    and shuts down gracefully on SIGTERM (uvicorn then re-raises the signal, as for the server)."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    import httpx

    src = str(Path(__file__).parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "lingualift.cli", "dashboard", f"store={loop_files.store}",
               f"traffic={loop_files.traffic}", f"monitor={loop_files.ecda}", "port=0"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)  # fmt: skip
    try:
        first = process.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+) \(read-only\)", first)
        assert match, first
        deadline = time.time() + 30
        while True:
            try:
                page = httpx.get(match.group(1) + "/", timeout=5)
                break
            except httpx.TransportError:
                assert time.time() < deadline, "the dashboard did not answer"
                time.sleep(0.1)
        assert page.status_code == 200 and 'data-current="sw/v2"' in page.text
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    assert process.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in out


def test_a_long_monitor_lists_the_newest_windows(loop_files, monkeypatch):
    from lingualift.dashboard import app as app_module

    monkeypatch.setattr(app_module, "MAX_WINDOW_ROWS", 2)
    html = client(loop_files).get("/").text
    assert html.count('<tr id="sw-w') == 2 and 'id="sw-w3"' in html and 'id="sw-w0"' not in html
    assert "the last 2 of 4 windows" in html
