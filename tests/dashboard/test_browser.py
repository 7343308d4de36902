"""The dashboard in a real headless browser: Debian's Chromium driven by Playwright.

The loop's files come from its own building blocks on a tiny model (``loop_world.py``: a store
with a promotion, the traffic log, the ECDA folder). The page must show the promotion (version,
gate decision), render its charts (SVG elements with a non-empty box), offer no rollback when
read-only, and roll back with the key when actions are allowed. A screenshot of the page is
saved under the test's folder, and to ``docs/dashboard.png`` with ``LINGUALIFT_SCREENSHOTS=1``
(the committed one was made so)::

    LINGUALIFT_SCREENSHOTS=1 python -m pytest tests/dashboard/test_browser.py

About 45 s on 2 busy cores, most of it building the loop's files. Skipped, saying why, where
Chromium or Playwright is missing (``.ci/run`` installs Chromium).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from lingualift.adapters.store import AdapterStore
from lingualift.dashboard.config import DashboardConfig
from lingualift.dashboard.server import build_dashboard
from lingualift.serving.server import ServerThread

from .loop_world import build_loop_world

CHROMIUM = Path("/usr/bin/chromium")
DOCS_SCREENSHOT = Path(__file__).parents[2] / "docs" / "dashboard.png"
LAUNCH_FLAGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason="Debian's Chromium is not installed (apt-get install chromium; .ci/run does)",
    ),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_loop_world(tmp_path_factory.mktemp("loop"))


@pytest.fixture(scope="module")
def browser():
    """Chromium with a fresh profile; Playwright's own browser download is never used."""
    with sync_api.sync_playwright() as playwright:
        profile = tempfile.mkdtemp(prefix="chromium-profile-")
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=LAUNCH_FLAGS,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def serve(world, **options):
    config = DashboardConfig(store=str(options.pop("store", world.store)),
                             traffic=str(options.pop("traffic", world.traffic)),
                             monitor=str(world.ecda), refresh_s=0, **options)  # fmt: skip
    return ServerThread(build_dashboard(config))


def check_charts_rendered(page) -> None:
    charts = page.locator("svg.chart")
    assert charts.count() >= 7
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50
    sw = page.locator("#lang-sw")
    assert sw.locator("rect.bar").count() > 10  # traffic bars per adapter
    assert sw.locator("circle.node").count() == 2  # v1 -> v2
    # Every polyline has a drawn extent (the browser laid the SVG out, not just parsed it).
    extents = page.evaluate(
        "() => [...document.querySelectorAll('svg.chart polyline')]"
        ".map(p => { const b = p.getBBox(); return b.width + b.height; })"
    )
    assert extents and min(extents) > 0


def test_the_page_shows_the_promotion_and_its_charts_read_only(world, browser):
    with serve(world) as server:
        page = browser.new_page()
        page.goto(server.url, wait_until="load")
        assert page.title() == "lingualift dashboard"
        assert page.locator("#mode").inner_text() == "read-only"
        sw = page.locator("#lang-sw")
        assert sw.locator("[data-current]").inner_text() == "sw/v2"
        promote = sw.locator("tr.decision[data-action='promote']")
        assert promote.count() == 1
        text = promote.inner_text()
        assert "promote v2 (was v1)" in text and "update sw-w00002" in text
        assert "min_gain -1" in text and "tolerance 1" in text and "window 2" in text
        assert sw.locator("tr[data-version='sw/v2']").inner_text().count("ECDA update") == 1
        drifted = sw.locator("tr.window[data-drift='true']")
        assert drifted.count() == 1 and drifted.get_attribute("data-window") == "2"
        assert sw.locator("tr.window").count() == 5
        # The clusters that grew open to show their example queries.
        cluster = drifted.locator("details").first
        cluster.locator("summary").click()
        assert cluster.locator("li").count() >= 1 and cluster.locator("li").first.is_visible()
        check_charts_rendered(page)
        # Read-only: no action on the page, and the route refuses.
        assert page.locator("form[action='/actions/rollback']").count() == 0
        assert page.locator("[data-action='rollback']").count() == 0
        answer = page.request.post(f"{server.url}/actions/rollback", form={"lang": "sw"})
        assert answer.status == 403
        page.close()
    assert AdapterStore(world.store).current_version("sw") == 2


def test_rollback_with_the_key(world, browser, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(world.store, store)
    with serve(world, store=store, allow_actions=True, api_key="let-me-roll") as server:
        page = browser.new_page()
        page.goto(server.url, wait_until="load")
        assert page.locator("#mode").inner_text() == "actions enabled"
        action = page.locator("#lang-sw [data-action='rollback']")
        assert "Roll back sw/v2 → v1" in action.inner_text()
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        if os.environ.get("LINGUALIFT_SCREENSHOTS") == "1":
            shutil.copyfile(tmp_path / "dashboard.png", DOCS_SCREENSHOT)
        # A wrong key is refused and changes nothing.
        action.locator("input[name='api_key']").fill("guess")
        with page.expect_navigation():
            action.locator("button[type='submit']").click()
        assert "Wrong or missing API key" in page.content()
        assert AdapterStore(store).current_version("sw") == 2
        # The right key rolls back through the store; the page shows it after the redirect.
        page.goto(server.url, wait_until="load")
        action = page.locator("#lang-sw [data-action='rollback']")
        action.locator("input[name='api_key']").fill("let-me-roll")
        with page.expect_navigation():
            action.locator("button[type='submit']").click()
        assert page.locator("#lang-sw [data-current]").inner_text() == "sw/v1"
        assert "sw rolled back from v2 to v1" in page.locator("#recent-actions").inner_text()
        assert page.locator("#lang-sw tr.decision").first.get_attribute("data-action") == "rollback"
        page.close()
    assert AdapterStore(store).current_version("sw") == 1
    assert AdapterStore(store).history("sw")[-1]["action"] == "rollback"
    assert "rollback" in (store / "dashboard-actions.jsonl").read_text()


def test_the_page_rereads_the_files_by_itself(world, browser, tmp_path):
    """A segment the server closes shows up without anyone reloading the page."""
    traffic = tmp_path / "traffic"
    shutil.copytree(world.traffic, traffic)
    config = DashboardConfig(store=str(world.store), traffic=str(traffic), refresh_s=1)
    with ServerThread(build_dashboard(config)) as server:
        page = browser.new_page()
        page.goto(server.url, wait_until="load")
        assert "3 closed segment(s); 1 segment(s) still being written" in page.content()
        (partial,) = traffic.glob("*.partial")
        partial.rename(partial.with_name(partial.name.removesuffix(".partial")))
        page.wait_for_function(
            "() => document.body.innerText.includes('4 closed segment(s)')", timeout=15_000
        )
        page.close()
