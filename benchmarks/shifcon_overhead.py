"""Benchmark: forward-pass cost of the ShifCon hooks, and language-vector throughput.

Forward passes with and without the hooks run on the same model and batch in
one process, interleaved (ABC, CBA, ...), so whatever else runs on the machine
slows every variant alike. The result is the ratio of median times (target:
at most 1.03). Variants: no hooks; one language for the batch; a mixed batch
with one language per row.

    python benchmarks/shifcon_overhead.py                       # embedded Gemma 3 270M
    python benchmarks/shifcon_overhead.py --rounds 20 --batch 8 --seq 128
    python benchmarks/shifcon_overhead.py --random-shape --layers 32 --hidden 1024

Writes JSON and a PNG (default docs/shifcon_overhead.{json,png}).
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

from lingualift.atomic import atomic_write_text
from lingualift.data import ParallelCorpus
from lingualift.shifcon import LanguageVectors, ShifCon, compute_language_vectors, model_signature


def load_model(args):
    if args.random_shape:
        from transformers import AutoModelForCausalLM

        from lingualift.testing import byte_tokenizer, model_config

        torch.manual_seed(0)
        config = model_config(
            "gemma3",
            hidden_size=args.hidden,
            num_layers=args.layers,
            vocab_size=32000,
            num_heads=4,
            num_kv_heads=1,
            intermediate_size=4 * args.hidden,
        )
        return AutoModelForCausalLM.from_config(config).eval(), byte_tokenizer(), "random-shape"
    from lingualift.models import load_causal_lm

    model, tokenizer = load_causal_lm(args.model)
    return model, tokenizer, args.model


def random_vectors(model, langs):
    sig = model_signature(model)
    means = {lang: torch.randn(sig["num_layers"] + 1, sig["hidden_size"]) for lang in langs}
    return LanguageVectors(means=means, counts={}, tokens={}, base_model="bench", **sig)


def hook_call_seconds(batch: int, seq: int, hidden: int, reps: int = 2000) -> dict[str, float]:
    """Seconds per call of the shift pre-hook itself on a ``(batch, seq, hidden)`` state."""
    from lingualift.shifcon.hooks import _Shift

    hidden_states = torch.randn(batch, seq, hidden)
    out = {}
    for name, delta in (
        ("one language", torch.randn(hidden)),
        ("mixed rows", torch.randn(batch, hidden)),
    ):
        hook = _Shift(delta)
        hook(None, (hidden_states,), {})  # cast cache warm-up
        start = time.process_time()
        for _ in range(reps):
            hook(None, (hidden_states,), {})
        out[name] = (time.process_time() - start) / reps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:gemma-3-270m")
    parser.add_argument("--random-shape", action="store_true")
    parser.add_argument("--layers", type=int, default=18)
    parser.add_argument("--hidden", type=int, default=640)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--vector-sentences", type=int, default=64)
    parser.add_argument("--out", default="docs/shifcon_overhead.json")
    parser.add_argument(
        "--micro-only", action="store_true", help="only time the hook call (CPU seconds)"
    )
    args = parser.parse_args()
    if args.micro_only:
        print(json.dumps(hook_call_seconds(args.batch, args.seq, args.hidden), indent=2))
        return

    model, tokenizer, name = load_model(args)
    n_layers = model_signature(model)["num_layers"]
    shifcon = ShifCon.from_vectors(
        random_vectors(model, ["en", "sw", "hi"]), n_layers // 3, n_layers // 2
    )
    torch.manual_seed(1)
    batch = {"input_ids": torch.randint(10, 1000, (args.batch, args.seq))}
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    langs = (["sw", "hi", "en", "sw"] * args.batch)[: args.batch]

    cpu_times: dict[str, list[float]] = {}

    def timed(context, key=None):
        start, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode(), context:
            model(**batch)
        if key is not None:  # CPU seconds of this process: less sensitive to other jobs
            cpu_times.setdefault(key, []).append(time.process_time() - cpu)
        return time.perf_counter() - start

    import contextlib

    variants = {
        "no hooks": lambda: contextlib.nullcontext(),
        "one language": lambda: shifcon.apply(model, "sw"),
        "mixed rows": lambda: shifcon.apply(model, langs),
    }
    for make in variants.values():  # warm-up
        timed(make())
    times: dict[str, list[float]] = {k: [] for k in variants}
    order = list(variants)
    for r in range(args.rounds):
        for key in order if r % 2 == 0 else order[::-1]:
            times[key].append(timed(variants[key](), key))
    base = statistics.median(times["no hooks"])
    ratios = {k: statistics.median(v) / base for k, v in times.items()}
    # Paired: each round's time over the same round's no-hook time (adjacent in
    # time, so a load spike hits both); the median of these is robust to spikes.
    paired = {
        k: statistics.median(t / b for t, b in zip(v, times["no hooks"], strict=True))
        for k, v in times.items()
    }

    paired_cpu = {
        k: statistics.median(t / b for t, b in zip(v, cpu_times["no hooks"], strict=True))
        for k, v in cpu_times.items()
    }

    # Vector throughput on real sentences of the corpus.
    texts = {
        lang: [
            r.text for r in ParallelCorpus().monolingual(lang, "ot", limit=args.vector_sentences)
        ]
        for lang in ("en", "sw")
    }
    start = time.perf_counter()
    vectors = compute_language_vectors(
        model,
        tokenizer,
        texts,
        "bench",
        batch_size=16,
        max_length=128,
        subspace_rank=16,
        progress=False,
    )
    seconds = time.perf_counter() - start
    n_sent = sum(vectors.counts.values())
    n_tok = sum(vectors.tokens.values())

    result = {
        "model": name,
        "batch": [args.batch, args.seq],
        "area": [shifcon.a, shifcon.b],
        "rounds": args.rounds,
        "median_seconds": {k: statistics.median(v) for k, v in times.items()},
        "ratio_vs_no_hooks": ratios,
        "paired_median_ratio": paired,
        "paired_median_ratio_cpu_time": paired_cpu,
        "cpu_times": cpu_times,
        "hook_call_cpu_seconds": hook_call_seconds(
            args.batch, args.seq, model_signature(model)["hidden_size"]
        ),
        "times": times,
        "vectors": {
            "sentences": n_sent,
            "tokens": n_tok,
            "seconds": seconds,
            "sentences_per_s": n_sent / seconds,
            "tokens_per_s": n_tok / seconds,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_at_end": os.getloadavg(),
            "torch_threads": torch.get_num_threads(),
        },
    }
    out = Path(args.out)
    atomic_write_text(out, json.dumps(result, indent=2))
    plot(times, paired, out.with_suffix(".png"), name, args)
    keys = ("median_seconds", "paired_median_ratio", "paired_median_ratio_cpu_time", "vectors")
    print(json.dumps({k: result[k] for k in keys}, indent=2))


def plot(times, ratios, path, name, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lingualift.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    keys = list(times)
    ax.boxplot(
        [times[k] for k in keys], tick_labels=[f"{k}\n(paired x{ratios[k]:.3f})" for k in keys]
    )
    ax.set_ylabel("forward pass, seconds")
    ax.set_title(
        f"ShifCon hook overhead, {name}, batch {args.batch}x{args.seq}, {args.rounds} rounds"
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
