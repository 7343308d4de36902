"""Benchmark: one training step of `lingualift train` vs a bare PEFT + torch loop.

Both sides train the same LoRA (same rank, targets, optimizer, schedule, clipping)
on the same batch of the same base model, in one process. Steps are interleaved
(ABBA order), so whatever else runs on the machine slows both sides alike; the
result is the ratio of median step times (target: at most 1.05).

    python benchmarks/adapters_train_step.py                      # embedded Gemma 3 270M, 8x128
    python benchmarks/adapters_train_step.py --random-shape       # random weights, same shape
    python benchmarks/adapters_train_step.py --batch 4 --seq 128 --pairs 8
    python benchmarks/adapters_train_step.py --tiny --batch 4 --seq 64 --pairs 300 \
        --out docs/adapters_train_step_overhead.json        # fixed per-step overhead

Writes the timings as JSON (--out, default docs/adapters_train_step.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from lingualift.adapters import LoraTrainer
from lingualift.atomic import atomic_write_text
from lingualift.data import ParallelCorpus
from lingualift.models import load_causal_lm
from lingualift.training import LoraSettings, TrainingArgs


def gemma3_270m_random():
    """Gemma 3 270M's real shape with random weights (no download needed)."""
    from transformers import AutoModelForCausalLM

    from lingualift.testing import model_config

    config = model_config(
        "gemma3",
        hidden_size=640,
        num_layers=18,
        vocab_size=262144,
        num_heads=4,
        num_kv_heads=1,
        intermediate_size=2048,
        head_dim=256,
        sliding_window=512,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)


def make_batch(tokenizer, batch: int, seq: int):
    """`batch` rows of `seq` real Swahili tokens from the embedded corpus."""
    text = " ".join(r.text for r in ParallelCorpus().monolingual("sw", "40", limit=2000))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    need = batch * seq
    if len(ids) < need:
        raise SystemExit(f"not enough corpus tokens for {batch}x{seq}")
    input_ids = torch.tensor(ids[:need]).view(batch, seq)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": input_ids.clone(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:gemma-3-270m")
    parser.add_argument(
        "--random-shape",
        action="store_true",
        help="random weights of Gemma 3 270M's shape instead of the embedded model",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a 2-layer hidden-32 random model: isolates the per-step overhead "
        "of the trainer (use many --pairs)",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=4, help="measured steps per side")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured steps per side")
    parser.add_argument("--out", default="docs/adapters_train_step.json")
    args = parser.parse_args()

    from peft import get_peft_model
    from transformers import get_scheduler

    lora = LoraSettings(r=8, alpha=16, dropout=0.05, target_modules="all-linear")
    steps = args.warmup + args.pairs
    if args.tiny:
        from lingualift.testing import tiny_causal_lm

        torch.set_num_threads(1)  # CPU time then measures the step's own work

        tiny = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1)
        model_a, tokenizer = tiny_causal_lm("llama", **tiny)
        model_b, _ = tiny_causal_lm("llama", **tiny)
        label = "tiny random Llama (2 layers, hidden 32, byte vocab)"
    else:
        tokenizer = load_causal_lm(args.model)[1]
    if args.tiny:
        pass
    elif args.random_shape:
        model_a, model_b = gemma3_270m_random(), gemma3_270m_random()
        label = "random Gemma 3 270M shape"
    else:
        model_a = load_causal_lm(args.model, with_tokenizer=False)
        model_b = load_causal_lm(args.model, with_tokenizer=False)
        label = args.model
    batch = make_batch(tokenizer, args.batch, args.seq)

    # Side A: lingualift's trainer, exactly what `lingualift train` runs per step.
    training = TrainingArgs(
        lr=2e-4, schedule="cosine", max_steps=steps, batch_size=args.batch,
        max_length=args.seq, max_grad_norm=1.0,
    )  # fmt: skip
    trainer = LoraTrainer(model_a, tokenizer, training, lora, run_dir="/tmp/lingualift-bench")
    trainer.loop.build_schedule(steps)

    # Side B: the plain PEFT + torch loop a user would write by hand.
    torch.manual_seed(0)
    bare = get_peft_model(model_b, lora.peft_config())
    bare.train()
    params = [p for p in bare.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0)
    scheduler = get_scheduler(
        "cosine", optimizer=optimizer, num_warmup_steps=0, num_training_steps=steps
    )

    def bare_step() -> float:
        loss = bare(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def lingualift_step() -> float:
        return trainer.train_step([batch])["loss"]

    sides = {"lingualift": lingualift_step, "bare": bare_step}
    times: dict[str, list[float]] = {"lingualift": [], "bare": []}
    # CPU seconds of this process too: on a shared machine they do not count the time spent
    # waiting for a core, so they expose a per-step overhead that wall time drowns in noise.
    cpu: dict[str, list[float]] = {"lingualift": [], "bare": []}
    losses: dict[str, list[float]] = {"lingualift": [], "bare": []}
    load_before = os.getloadavg()
    for i in range(steps):
        order = ["lingualift", "bare"] if i % 2 == 0 else ["bare", "lingualift"]  # ABBA
        for name in order:
            start, cpu_start = time.perf_counter(), time.process_time()
            loss = sides[name]()
            elapsed = time.perf_counter() - start
            cpu_elapsed = time.process_time() - cpu_start
            losses[name].append(loss)
            if i >= args.warmup:
                times[name].append(elapsed)
                cpu[name].append(cpu_elapsed)
            if not args.tiny or i % 50 == 0:
                print(f"step {i} {name:<10} {elapsed:7.3f} s  loss {loss:.4f}", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    paired = [a / b for a, b in zip(times["lingualift"], times["bare"], strict=True)]
    result = {
        "model": label,
        "batch": f"{args.batch}x{args.seq} tokens",
        "lora": "r=8, alpha=16, dropout=0.05, all-linear, AdamW, cosine, clip 1.0, fp32",
        "warmup_steps": args.warmup,
        "measured_steps_per_side": args.pairs,
        "seconds": times,
        "median_seconds": med,
        "ratio_median": med["lingualift"] / med["bare"],
        "ratio_paired_median": statistics.median(paired),
        "overhead_ms_per_step": 1000 * (med["lingualift"] - med["bare"]),
        "cpu_seconds_median": {k: statistics.median(v) for k, v in cpu.items()},
        "cpu_ratio_median": statistics.median(cpu["lingualift"]) / statistics.median(cpu["bare"]),
        "cpu_seconds": cpu,
        "losses": losses,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    keys = (
        "median_seconds",
        "ratio_median",
        "ratio_paired_median",
        "overhead_ms_per_step",
        "cpu_seconds_median",
        "cpu_ratio_median",
    )
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
