"""The monitor job watched: windows in TensorBoard, follow mode, Prometheus scraped while it runs."""

from __future__ import annotations

import contextlib
import importlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from lingualift.cli import main
from lingualift.jobs.monitor import run_monitor
from tests.compass.conftest import ToyEncoder
from tests.continual.helpers import TOPICS, log_rows, store_with_reference, texts, write_log
from tests.jobs.test_monitor import WINDOW, config, read_rows
from tests.test_tracking import read_scalars


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus endpoint: (name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    body = urllib.request.urlopen(url, timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def scrape_until(url, ready, failed, timeout=120.0):
    """Scrape until ``ready(samples)`` (the job runs in a thread; ``failed`` holds its error)."""
    deadline = time.monotonic() + timeout
    got: dict = {}
    while time.monotonic() < deadline:
        assert not failed, failed
        with contextlib.suppress(urllib.error.URLError, ConnectionError):
            got = scrape(url)
            if ready(got):
                return got
        time.sleep(0.05)
    raise AssertionError(f"the metrics never got there; last scrape: {sorted(got.items())[:40]}")


@contextlib.contextmanager
def followed(run: Callable[[threading.Event], object], port: int, join_timeout: float = 60.0):
    """Run a follow-mode job in a thread: yields its metrics URL and the list that collects its
    error; on leaving, stops it through its event and checks that it ended cleanly."""
    stop, failed = threading.Event(), []

    def follow():
        try:
            run(stop)
        except BaseException as exc:
            failed.append(repr(exc))

    job = threading.Thread(target=follow)
    job.start()
    try:
        yield f"http://127.0.0.1:{port}/metrics", failed
    finally:
        stop.set()
        job.join(timeout=join_timeout)
    assert not job.is_alive() and not failed


def close_segment(path, rows, extra_lines=()):
    """Write a segment as the server does: as .partial, renamed when whole."""
    partial = write_log(path.with_name(path.name + ".partial"), rows, extra_lines)
    partial.rename(path)


SW = (("lang", "sw"),)


def test_windows_reach_tensorboard_with_steps_that_never_go_back(tmp_path):
    pytest.importorskip("tensorboard")
    store_with_reference(tmp_path / "store")
    logs = tmp_path / "logs"
    close_segment(logs / "seg-0001.jsonl", log_rows(texts(TOPICS[:3], 2 * WINDOW, "a")))
    close_segment(logs / "seg-0002.jsonl", log_rows(texts(("harvest", "king"), WINDOW, "b")))
    settings = {"report_to": "tensorboard"}
    run_monitor(config(tmp_path, logs, **settings), progress=False, encoder=ToyEncoder())
    close_segment(logs / "seg-0003.jsonl", log_rows(texts(TOPICS[:3], WINDOW, "c")))
    run_monitor(config(tmp_path, logs, **settings), progress=False, encoder=ToyEncoder())

    rows = read_rows(tmp_path)
    scalars = read_scalars(tmp_path / "out" / "logs" / "lingualift")
    assert [s for s, _ in scalars["monitor/sw/js_pvalue"]] == [1, 2, 3, 4]  # resumed at 4
    for test in ("js", "mmd", "novelty"):
        got = [v for _, v in scalars[f"monitor/sw/{test}_pvalue"]]
        assert got == pytest.approx([r[test]["pvalue"] for r in rows], abs=1e-6)
    assert [v for _, v in scalars["monitor/sw/drift"]] == [float(r["drift"]) for r in rows]
    assert [v for _, v in scalars["monitor/sw/n"]] == [WINDOW] * 4
    assert [v for _, v in scalars["monitor/sw/window"]] == [0, 1, 2, 3]


def test_follow_serves_prometheus_metrics_while_it_runs(tmp_path):
    pytest.importorskip("prometheus_client")
    store_with_reference(tmp_path / "store")
    logs = tmp_path / "logs"
    null_text = {**log_rows(["x"])[0], "text": None}
    stable = log_rows(texts(TOPICS[:3], 2 * WINDOW, "a"))
    close_segment(logs / "seg-0001.jsonl", stable, ["{not json", json.dumps(null_text)])
    port = free_port()
    settings = dict(follow=True, poll_seconds=0.05, metrics_port=port, report_to="none")

    def run(stop):
        run_monitor(config(tmp_path, logs, **settings), progress=False,
                    encoder=ToyEncoder(), stop=stop)  # fmt: skip

    with followed(run, port) as (url, failed):
        got = scrape_until(
            url, lambda s: s.get(("lingualift_monitor_windows_total", SW)) == 2, failed
        )
        last = read_rows(tmp_path)[-1]
        for test in ("js", "mmd", "novelty"):
            labels = (("lang", "sw"), ("test", test))
            assert got[("lingualift_monitor_pvalue", labels)] == pytest.approx(
                last[test]["pvalue"], abs=1e-6
            )
        assert got[("lingualift_monitor_alarms_total", SW)] == 0
        assert got[("lingualift_current_version", SW)] == 1
        assert got[("lingualift_monitor_window_queries", SW)] == WINDOW
        assert got[("lingualift_monitor_rows_total", ())] == 2 * WINDOW + 1
        skipped = "lingualift_monitor_skipped_rows_total"
        assert got[(skipped, (("reason", "malformed"),))] == 1
        assert got[(skipped, (("reason", "no_text"),))] == 1
        # A segment closed while it follows: its window is tested and counted at the next poll.
        close_segment(logs / "seg-0002.jsonl", log_rows(texts(("harvest", "king"), WINDOW, "b")))
        got = scrape_until(
            url, lambda s: s.get(("lingualift_monitor_windows_total", SW)) == 3, failed
        )
        assert got[("lingualift_monitor_alarms_total", SW)] == 1
    with pytest.raises(urllib.error.URLError):  # the endpoint goes with the job
        urllib.request.urlopen(url, timeout=5)
    assert (tmp_path / "out" / "config.yaml").is_file()
    assert not (tmp_path / "out" / "logs").exists()  # report_to=none: no tracker files


def test_ctrl_c_between_polls_stops_the_monitor_cleanly(tmp_path, capsys, monkeypatch):
    """follow=true ends on Ctrl-C while waiting (or SIGTERM, through the same event) with exit 0,
    the summary printed and config.yaml written, as 'lingualift ecda' does."""
    store_with_reference(tmp_path / "store")
    logs = tmp_path / "logs"
    close_segment(logs / "seg-0001.jsonl", log_rows(texts(TOPICS[:3], 2 * WINDOW, "a")))

    def ctrl_c(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr("lingualift.embed.get_encoder", lambda spec: ToyEncoder())
    verb = importlib.import_module("lingualift.cli.monitor")
    waiting = SimpleNamespace(wait=ctrl_c)
    monkeypatch.setattr(verb, "sigterm_requests_stop", lambda: contextlib.nullcontext(waiting))
    code = main([
        "monitor", f"input={logs}", "langs=[sw]", f"store={tmp_path / 'store'}",
        f"out_dir={tmp_path / 'out'}", f"window={WINDOW}", "n_permutations=99",
        "n_bootstrap=199", "encoder=toy", "follow=true", "poll_seconds=30", "report_to=none",
    ])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "sw: 2 windows, 0 with drift" in captured.out
    assert "stopped following" in captured.err
    assert (tmp_path / "out" / "config.yaml").is_file()
