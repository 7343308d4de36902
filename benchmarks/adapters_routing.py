"""Benchmark: tokens/s of routed mixed-language generation vs a single adapter.

One base model carries three LoRA adapters (sw, fr, es; random non-zero
weights, since speed does not depend on what they learned). The same batch of
prompts is generated three ways, interleaved round by round so machine load
hits all alike:

* single  - every row through one adapter (the plain PEFT ``set_adapter`` path);
* routed  - each row through its language's adapter in one mixed batch (stacked
  LoRA through the adapter registry, :mod:`lingualift.adapters.multilora`), with
  one row in a language with no adapter (base model), languages identified by
  py3langid;
* base    - the base model alone, for reference.

    python benchmarks/adapters_routing.py                 # embedded Gemma 3 270M
    python benchmarks/adapters_routing.py --tiny --threads 1 --rounds 9 --out docs/adapters_routing_tiny.json

Writes JSON (--out, default docs/adapters_routing.json) and a bar chart next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lingualift.adapters import AdapterStore, Router, base_model_signature
from lingualift.atomic import atomic_path, atomic_write_text
from lingualift.data import ParallelCorpus


def prompts_for(langs: list[str], words: int = 12) -> list[str]:
    corpus = ParallelCorpus()
    out = []
    for i, lang in enumerate(langs):
        verse = corpus.monolingual(lang, "43", limit=40)[5 + i]
        out.append(" ".join(verse.text.split()[:words]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:gemma-3-270m")
    parser.add_argument("--tiny", action="store_true", help="tiny random model instead")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", default="docs/adapters_routing.json")
    args = parser.parse_args()

    from peft import LoraConfig, get_peft_model

    if args.threads:
        torch.set_num_threads(args.threads)

    from lingualift.models import load_causal_lm
    from lingualift.testing import tiny_causal_lm

    def base():
        if args.tiny:
            return tiny_causal_lm("llama", hidden_size=64, num_layers=4)
        return load_causal_lm(args.model)

    store = AdapterStore(tempfile.mkdtemp(prefix="lingualift-routing-"))
    for seed, lang in enumerate(("sw", "fr", "es")):
        model, _ = base()
        torch.manual_seed(seed)
        lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
        peft_model = get_peft_model(model, lora)
        store.save(lang, peft_model, card={"base_model": base_model_signature(peft_model)})
        del model, peft_model
    router = Router(*base(), store=store)
    # Eight rows: two per adapter language and two German rows (no adapter -> base model).
    row_langs = ["sw", "fr", "es", "de", "sw", "fr", "es", "de"]
    prompts = prompts_for(row_langs)
    router.route(prompts[:1])  # loads the language-identification model once
    start = time.perf_counter()
    routes = router.route(prompts)
    detect_ms = 1000 * (time.perf_counter() - start) / len(prompts)
    detected = [r.lang for r in routes]

    kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, batch_size=8)
    modes = {
        "single": lambda: router.generate(prompts, ["sw"] * len(prompts), **kwargs),
        "routed": lambda: router.generate(prompts, **kwargs),
        "base": lambda: router.generate(prompts, ["de"] * len(prompts), **kwargs),
    }
    for fn in modes.values():  # warm-up
        fn()
    rates: dict[str, list[float]] = {m: [] for m in modes}
    # Tokens per CPU-second as well: on a shared machine it leaves out time spent waiting
    # for a core, which wall-clock rates are full of.
    cpu_rates: dict[str, list[float]] = {m: [] for m in modes}
    names = list(modes)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            t0, c0 = time.perf_counter(), time.process_time()
            results = modes[name]()
            seconds = time.perf_counter() - t0
            cpu_seconds = time.process_time() - c0
            tokens = sum(g.new_tokens for g in results)
            rates[name].append(tokens / seconds)
            cpu_rates[name].append(tokens / cpu_seconds)
            print(
                f"round {r} {name:<7} {tokens} tokens in {seconds:6.2f} s = {tokens / seconds:7.1f} tok/s",
                flush=True,
            )
    med = {m: statistics.median(v) for m, v in rates.items()}
    result = {
        "model": "tiny random Llama (4 layers, hidden 64)" if args.tiny else args.model,
        "batch": f"{len(prompts)} prompts x {args.new_tokens} new tokens, greedy",
        "row_languages": row_langs,
        "detected_languages": detected,
        "routes": [r.adapter or "base" for r in routes],
        "langid_ms_per_prompt": detect_ms,
        "tokens_per_s": rates,
        "median_tokens_per_s": med,
        "routed_over_single": med["routed"] / med["single"],
        "tokens_per_cpu_s": cpu_rates,
        "median_tokens_per_cpu_s": {m: statistics.median(v) for m, v in cpu_rates.items()},
        "routed_over_single_cpu": statistics.median(cpu_rates["routed"])
        / statistics.median(cpu_rates["single"]),
        "torch_threads": torch.get_num_threads(),
        "loadavg_after": os.getloadavg(),
    }
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "median_tokens_per_s",
                    "routed_over_single",
                    "median_tokens_per_cpu_s",
                    "routed_over_single_cpu",
                    "detected_languages",
                )
            },
            indent=2,
        )
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2))
    plot(med, out.with_suffix(".png"), result["model"])


def plot(med: dict[str, float], path: Path, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    labels = {"single": "one adapter", "routed": "routed, mixed batch", "base": "base model"}
    ax.bar([labels[k] for k in med], list(med.values()), color=["#4c72b0", "#dd8452", "#999999"])
    ax.set_ylabel("generated tokens / s")
    ax.set_title(f"Routed generation, {model}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
