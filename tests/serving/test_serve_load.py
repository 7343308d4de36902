"""The load benchmark (``benchmarks/serve_load.py``) end to end in its tiny mode.

Two real ``lingualift serve`` processes (static and continuous batching) on a tiny random
model: Poisson arrivals with drawn lengths and mixed adapters, then the closed loop against
bare ``generate``. Its figures mean nothing here; the test checks that every request is
answered, every length honoured, every request logged, and the report complete. Process
start-ups make it take about half a minute, hence the integration mark.
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

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "serve_load.py"


@pytest.mark.integration
def test_tiny_load_benchmark_compares_static_and_continuous_batching(tmp_path):
    model = save_tiny_causal_lm(tmp_path / "model", "llama", **TINY)
    out = tmp_path / "serve_load.json"
    env = {**os.environ, "LINGUALIFT_HOME": str(tmp_path / "home")}  # never the real cache
    command = [
        sys.executable, str(SCRIPT), "--tiny", "--model", str(model), "--langs", "sw,fr",
        "--requests", "6", "--loads", "0.8", "--closed-requests", "4", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    report = json.loads(out.read_text())
    (load,) = report["poisson"]["loads"]
    for mode in ("static", "continuous"):
        summary = load[mode]
        assert summary["requests"] == 6 and summary["tokens"] > 0
        assert all(
            r["status"] == 200 and r["tokens"] == r["asked"] for r in summary["requests_detail"]
        )
        assert all(8 <= r["asked"] <= 128 for r in summary["requests_detail"])
        assert summary["p50_latency_s"] <= summary["p95_latency_s"]
        assert 0 < summary["p50_ttft_s"] <= summary["p50_latency_s"]
    assert set(load["ratios"]) == {
        "p95_latency_continuous_over_static",
        "throughput_continuous_over_static",
    }
    assert report["requests_sent"] == report["log_rows"]
    closed = report["closed"]
    assert set(closed["ratios"]) == {
        "mixed_over_single",
        "single_over_bare",
        "mixed_over_bare_mixed",
    }
    assert closed["rounds_detail"]["mixed"][0]["adapters"] == ["fr/v1", "sw/v1"]
    assert "continuous" in done.stdout and "closed loop: bare" in done.stdout
