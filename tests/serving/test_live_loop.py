"""The whole loop, live (``benchmarks/live_loop.py``) end to end in its tiny mode.

A real ``lingualift serve`` and a real ``lingualift ecda`` (subprocesses) on a tiny random
model: drifting traffic from the openai client, a drift found in the server's log, an update
trained, gated and promoted, the server answering with the new version without a restart and
without losing a request. About 40 s on 2 busy cores (process start-ups dominate), hence the
integration mark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lingualift.testing import save_tiny_causal_lm

from ..adapters.conftest import TINY

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "live_loop.py"


@pytest.mark.integration
def test_tiny_live_loop_promotes_with_no_restart_and_no_lost_request(tmp_path):
    model = save_tiny_causal_lm(tmp_path / "model", "llama", **TINY)
    out_json, out_png = tmp_path / "live.json", tmp_path / "live.png"
    env = {**os.environ, "LINGUALIFT_HOME": str(tmp_path / "home")}  # never the real cache
    command = [
        sys.executable, str(SCRIPT), "--tiny", "--model", str(model),
        "--work-dir", str(tmp_path / "work"), "--out-json", str(out_json),
        "--out-png", str(out_png), "--timeout-s", "400",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    summary = json.loads(out_json.read_text())
    assert summary["checks"] == {
        "every_request_answered": True,
        "one_log_row_per_request": True,
        "promotion_in_history_with_evidence": True,
        "server_never_restarted": True,
        "switch_without_gap": True,
    }
    requests = summary["requests"]
    assert requests["statuses"] == {"200": requests["sent"]}
    assert (
        set(requests["by_adapter"]) == {"sw/v1", "sw/v2"} and requests["by_adapter"]["sw/v2"] >= 20
    )
    assert requests["before_genre"] == 80 and requests["after_genre"] > 40
    log = summary["traffic_log"]
    assert log["rows"] == log["requests"] == requests["sent"] and not log["partial_left"]
    assert log["segments"] > 1  # segments closed while the run went on, and ecda read them
    promotion = summary["promotion"]["entry"]
    assert promotion["action"] == "promote" and promotion["version"] == 2
    assert promotion["previous"] == 1 and promotion["update"].startswith("sw-w")
    server = summary["server"]
    assert server["pid_start"] == server["pid_end"] and server["adapter_reloads"] == 2
    assert server["shut_down_gracefully"]
    assert server["requests_counted_by_server"] == requests["sent"]
    switch = summary["switch"]
    assert switch["old_after_first_new"] == 0 and switch["header_mismatches"] == 0
    assert switch["first_new_answer_s"] >= switch["promotion_s"] - 1.0
    drift = summary["drift"]
    assert drift["first_drift_window"] == 2  # the first window of after-genre traffic
    assert drift["change_s"] < drift["update_planned_s"] < drift["decided_s"]
    assert summary["ecda"]["exit_code"] == 0 and summary["ecda"]["read_whole_log"]
    assert out_png.stat().st_size > 10_000
    assert "check          PASS  switch_without_gap" in done.stdout
