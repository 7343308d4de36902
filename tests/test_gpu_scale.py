"""``benchmarks/gpu_scale.py --tiny`` runs end to end on the CPU: the same steps as on a GPU
(random model of a real architecture, bf16 and nf4 LoRA training with and without gradient
checkpointing against the plan, ShifCon hooks, stacked multi-LoRA decoding), tiny shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import needs_bitsandbytes

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_scale.py"


@needs_bitsandbytes()
def test_the_gpu_benchmark_runs_end_to_end_with_tiny_shapes(tmp_path):
    out = tmp_path / "gpu_scale.json"
    # Phi-4-mini's shape only (partial rotary, tied embeddings): the others run the same code.
    command = [sys.executable, str(SCRIPT), "--tiny", "--models", "phi-4-mini", "--out", str(out)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["tiny"] is True and report["sizes"]["batch"] == 2
    for precision in ("bf16", "nf4"):
        entry = report["results"]["phi-4-mini"][precision]
        assert entry["params"] > 0
        with_ckpt, without = entry["train_checkpointing"], entry["train_no_checkpointing"]
        for run in (with_ckpt, without):
            assert run["out_of_memory"] is False and run["tokens_per_s"] > 0
            assert run["planned_total_bytes"] > 0 and run["loss"] == run["loss"]
        # The planner counts less activation memory with checkpointing than without.
        assert with_ckpt["planned_activations_bytes"] < without["planned_activations_bytes"]
        assert entry["shifcon_hooks"]["plain_ms"] > 0 and "overhead" in entry["shifcon_hooks"]
        decoding = entry["multilora_decoding"]
        assert decoding["stacked_reason"] is None  # stacked over bf16 and over nf4 layers
        assert decoding["four_adapters_stacked_tokens_per_s"] > 0
        assert decoding["four_adapters_peft_tokens_per_s"] > 0
