"""Benchmark: one decoding step of a batch that mixes LoRA adapters, three ways.

The model carries ``--adapters`` random LoRA adapters (rank ``--rank``, all
linear layers; speed does not depend on what an adapter learned). A batch of
``--batch`` rows is prefilled (``--prompt-tokens`` each), then ``--steps``
tokens are decoded on the KV cache, timed per step:

* single  - every row on one adapter (PEFT's active adapter);
* peft    - row ``i`` on adapter ``i % adapters`` through PEFT ``adapter_names``
  (per layer: a loop over the adapters present, gather, two matmuls, scatter);
* stacked - the same rows through :class:`lingualift.adapters.multilora.StackedLora`
  (per layer: two batched matmuls on each row's gathered matrices), which the
  server and the Router use for mixed batches.

The three are interleaved ``--reps`` times so that a noisy machine slows them
alike; the median seconds per step of each and the ratios to ``single`` are
printed and written as JSON (``--out``). Run it on an otherwise idle machine:

    python benchmarks/mixed_lora.py --out docs/mixed_lora.json     # embedded 270M, ~3 min
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded:gemma-3-270m")
    parser.add_argument("--adapters", type=int, default=4)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=48)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model

    from lingualift.adapters.multilora import StackedLora
    from lingualift.models import load_causal_lm

    model, _ = load_causal_lm(args.model)
    names = [f"lang{i}" for i in range(args.adapters)]
    for seed, name in enumerate(names):
        torch.manual_seed(seed)
        config = LoraConfig(
            r=args.rank,
            lora_alpha=2 * args.rank,
            target_modules="all-linear",
            init_lora_weights=False,
        )
        if seed == 0:
            model = get_peft_model(model, config, adapter_name=name)
        else:
            model.add_adapter(name, config)
    model.eval()
    rows = [names[i % len(names)] for i in range(args.batch)]
    vocab = model.get_input_embeddings().num_embeddings
    shape = (args.batch, args.prompt_tokens)
    ids = torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(0))
    stacked = StackedLora(model)
    if not stacked.ready():
        raise SystemExit("the adapters cannot be stacked")

    def seconds_per_step(context, extra: dict) -> float:
        with torch.inference_mode(), context:
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1, **extra)
            cache, tokens = out.past_key_values, out.logits[:, -1].argmax(-1)
            start = time.perf_counter()
            for _ in range(args.steps):
                out = model(
                    input_ids=tokens[:, None],
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                    **extra,
                )
                cache, tokens = out.past_key_values, out.logits[:, -1].argmax(-1)
            return (time.perf_counter() - start) / args.steps

    times: dict[str, list[float]] = {"single": [], "peft": [], "stacked": []}
    for _ in range(args.reps):
        model.set_adapter(names[0])
        times["single"].append(seconds_per_step(contextlib.nullcontext(), {}))
        times["peft"].append(seconds_per_step(contextlib.nullcontext(), {"adapter_names": rows}))
        times["stacked"].append(seconds_per_step(stacked.apply(rows), {}))

    median = {mode: statistics.median(values) for mode, values in times.items()}
    report = {
        **{k: v for k, v in vars(args).items() if k != "out"},
        "threads": torch.get_num_threads(),
        "median_seconds_per_step": median,
        "over_single_throughput": {mode: median["single"] / s for mode, s in median.items()},
        "seconds_per_step": times,
    }
    print(f"{'mode':<8} {'s/step':>8} {'throughput vs single':>22}")
    for mode, seconds in median.items():
        print(f"{mode:<8} {seconds:>8.3f} {report['over_single_throughput'][mode]:>22.2f}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
