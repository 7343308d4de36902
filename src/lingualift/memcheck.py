"""Measure a verb's memory in a clean subprocess, to hold the planner's estimates to reality.

:func:`measure` starts ``python -m lingualift.memcheck`` with glibc's allocator told to
return every large block to the system at once (a fixed ``mmap`` threshold), so the
process's resident memory follows what PyTorch holds. The child loads the model with
:func:`lingualift.models.load_causal_lm` (on the CPU) and reads every weight once, then
runs the real code of the verb:

- ``eval``: :func:`lingualift.evaluation.perplexity.perplexity` over ``max_length``
  windows; the peak over the memory before it is the forward pass's activations;
- ``train``: :class:`~lingualift.adapters.LoraTrainer` steps on full ``max_length`` rows;
  the peak of the last step (the optimizer state already exists) over the resident memory
  before it is what the planner calls activations plus gradients.

Peaks are Linux's high-water mark of resident memory (``VmHWM``, reset through
``/proc/self/clear_refs``), so this runs on Linux only. Used by
``tests/planning/test_planning.py`` (a small random model) and ``benchmarks/plan_accuracy.py``
(the embedded Gemma 3 270M).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lingualift.errors import LingualiftError
from lingualift.training import LoraSettings

# Large blocks come from mmap and go back to the system when freed (no heap caching), so
# resident memory tracks live tensors.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


@dataclasses.dataclass
class Measurement:
    """What the child process measured, in bytes."""

    weights_bytes: int
    """Resident memory added by loading the model and reading every weight once."""
    eval_peak_bytes: int | None = None
    """Peak resident memory of the evaluation over the memory just before it."""
    train_peak_bytes: int | None = None
    """Peak resident memory of the last training step over the memory just before it (the
    optimizer state exists by then: activations plus gradients)."""
    train_first_step_peak_bytes: int | None = None
    """The same for the first step, which also allocates the optimizer state."""
    params: int = 0
    """Parameters of the loaded model."""
    seconds: float = 0.0
    """Time the measured work took (loading excluded)."""


def _status() -> dict[str, int]:
    values = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")  # resets VmHWM to the current resident size


def _texts(tokenizer: Any, count: int, tokens: int, seed: int) -> list[str]:
    """Random word salad, each text about ``tokens`` tokens long (at least ``tokens - 2``)."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    texts = []
    for _ in range(count):
        words = [
            "".join(rng.choice(letters) for _ in range(rng.randint(2, 8))) for _ in range(tokens)
        ]
        ids = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"][:tokens]
        texts.append(tokenizer.decode(ids))
    return texts


def _run_child(spec: dict[str, Any]) -> dict[str, Any]:
    import time

    import torch

    torch.set_num_threads(int(spec.get("threads", 1)))
    from lingualift.adapters.data import Example
    from lingualift.adapters.trainer import LoraTrainer
    from lingualift.evaluation.perplexity import perplexity
    from lingualift.models import load_causal_lm, load_config_only, load_tokenizer
    from lingualift.placement import ModelSettings
    from lingualift.training import TrainingArgs

    settings = ModelSettings(model=spec["model"], dtype=spec["dtype"], device="cpu")
    # The tokenizer and the model's code (imported by building it on the meta device) are
    # in place before the baseline, so the weights' figure holds only the weights.
    tokenizer = load_tokenizer(settings.model)
    load_config_only(settings)
    gc.collect()
    before = _status()["VmRSS"]
    model = load_causal_lm(settings, with_tokenizer=False)
    with torch.no_grad():  # mmapped float32 weights become resident only when read
        for param in model.parameters():
            param.float().sum()
    gc.collect()
    weights = _status()["VmRSS"] - before
    batch, length, steps = spec["batch_size"], spec["max_length"], spec["steps"]
    began = time.perf_counter()
    out: dict[str, Any] = {"weights_bytes": weights, "params": model.num_parameters()}
    if "eval" in spec["verbs"]:  # first: training wraps the model in LoRA layers
        texts = _texts(tokenizer, batch, length - 1, seed=0)
        gc.collect()
        start = _status()["VmRSS"]
        _reset_peak()
        perplexity(model, tokenizer, texts, max_length=length, batch_size=batch)
        out["eval_peak_bytes"] = _status()["VmHWM"] - start
    if "train" in spec["verbs"]:
        args = TrainingArgs(
            batch_size=batch,
            max_length=length,
            max_steps=steps,
            precision="auto",
            gradient_checkpointing=spec["gradient_checkpointing"],
            report_to="none",
        )
        with tempfile.TemporaryDirectory() as run_dir:
            trainer = LoraTrainer(
                model, tokenizer, args, LoraSettings(**spec["lora"]), run_dir=run_dir
            )
            texts = _texts(tokenizer, batch * steps, length + 8, seed=0)
            trainer.load_data(
                [Example(id=str(i), kind="text", text=t) for i, t in enumerate(texts)]
            )
            peaks = []
            for step in range(steps):
                micro = trainer.micro_batches(step)
                gc.collect()
                start = _status()["VmRSS"]
                _reset_peak()
                trainer.train_step(micro)
                peaks.append(_status()["VmHWM"] - start)
        out.update(train_peak_bytes=peaks[-1], train_first_step_peak_bytes=peaks[0])
    out["seconds"] = time.perf_counter() - began
    return out


def measure(
    model: str,
    verbs: Sequence[str],
    batch_size: int,
    max_length: int,
    *,
    dtype: str = "float32",
    lora: LoraSettings | None = None,
    gradient_checkpointing: bool = False,
    steps: int = 2,
    threads: int = 1,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> Measurement:
    """Measure ``verbs`` (train, eval) on ``model`` on the CPU in a fresh subprocess.

    One child loads the model once and measures each verb (see the module docstring); with
    no verbs it measures the weights alone.
    """
    if not Path("/proc/self/clear_refs").exists():
        raise LingualiftError("Measuring peak memory needs Linux (/proc/self/clear_refs).")
    unknown = [v for v in verbs if v not in ("train", "eval")]
    if unknown:
        raise LingualiftError(
            f"memcheck measures train and eval (or just the weights), not {unknown}."
        )
    spec = {
        "model": model,
        "verbs": list(verbs),
        "batch_size": batch_size,
        "max_length": max_length,
        "dtype": dtype,
        "lora": dataclasses.asdict(lora or LoraSettings()),
        "gradient_checkpointing": gradient_checkpointing,
        "steps": steps,
        "threads": threads,
    }
    child_env = {**os.environ, **ALLOCATOR_ENV, **(env or {})}
    # The child imports this same lingualift, wherever it was imported from.
    source = str(Path(__file__).resolve().parent.parent)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (source, child_env.get("PYTHONPATH", "")) if p
    )
    child_env.setdefault("OMP_NUM_THREADS", str(threads))
    done = subprocess.run(
        [sys.executable, "-m", "lingualift.memcheck", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"memcheck child failed ({done.returncode}): {' | '.join(tail)}")
    result = json.loads(lines[-1])
    return Measurement(**result)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    print(json.dumps(_run_child(json.loads(argv[0]))), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover - the measuring child
    sys.exit(main())
