"""Real check: ShifCon vs plain LoRA on the same data and steps, held-out non-English NLL.

Both runs use ``lingualift.shifcon.trainer`` with the same pairs (embedded
corpus, epistles), batches, seed, LoRA rank, learning rate and step count:

- ``lora``: ``shift=false, beta=0`` (plain LoRA on the non-English side, ``alpha=1``);
- ``shifcon``: shifted forward, ``alpha * L_gen + beta * L_con`` (published 0.5 / 2.0).

Held-out text is a different book (John, 43) in each language, scored with
``lingualift.evaluation.perplexity_by_language``; ShifCon is scored with its
hooks on (that is how it is deployed), the others without. The base model is
scored both ways too, to separate the effect of the shift from that of training.

    python benchmarks/shifcon_train_compare.py --shifcon runs/shifcon-gemma \
        --langs sw hi --steps 24 --batch 4 --max-length 64 --lr 2e-4

Writes docs/shifcon_train_compare.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from lingualift.atomic import atomic_path, atomic_write_text
from lingualift.data import ParallelCorpus
from lingualift.evaluation import perplexity_by_language
from lingualift.jobs.shifcon_train import ShifConTrainConfig, run_shifcon_train
from lingualift.models import load_causal_lm
from lingualift.shifcon import ShifCon
from lingualift.shifcon.loss import ShifConObjective
from lingualift.training import TrainingArgs


def score(model, tokenizer, records, shifcon, args):
    context = (lambda lang: shifcon.apply(model, lang)) if shifcon is not None else None
    results = perplexity_by_language(
        model, tokenizer, records, context=context, max_length=args.max_length, batch_size=8
    )
    return {lang: r.nll for lang, r in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shifcon", default="runs/shifcon-gemma")
    parser.add_argument("--langs", nargs="+", default=["sw", "hi"])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--per-language", type=int, default=64)
    parser.add_argument("--heldout", type=int, default=40, help="held-out verses per language")
    parser.add_argument("--runs", default="runs/shifcon-compare")
    parser.add_argument("--out", default="docs/shifcon_train_compare.json")
    args = parser.parse_args()

    shifcon = ShifCon.load(args.shifcon)
    corpus = ParallelCorpus()
    heldout = [
        r
        for lang in ["en", *args.langs]
        for r in corpus.monolingual(lang, "43", limit=args.heldout)
    ]
    common = dict(
        shifcon=args.shifcon,
        langs=args.langs,
        books="epistles",
        per_language=args.per_language,
        train=TrainingArgs(
            batch_size=args.batch, max_length=args.max_length, max_steps=args.steps, lr=args.lr,
            warmup_steps=0.1, save_every=8, seed=0,
        ),
    )  # fmt: skip
    plain = ShifConObjective(shift=False, alpha=1.0, beta=0.0)
    configs = {
        "lora": ShifConTrainConfig(out_dir=f"{args.runs}/lora", objective=plain, **common),
        "shifcon": ShifConTrainConfig(out_dir=f"{args.runs}/shifcon", **common),
    }
    result = {"args": vars(args), "a": shifcon.a, "b": shifcon.b, "train": {}, "heldout_nll": {}}
    model, tokenizer = load_causal_lm(shifcon.base_model)
    result["heldout_nll"]["base"] = score(model, tokenizer, heldout, None, args)
    result["heldout_nll"]["base + shift (no training)"] = score(
        model, tokenizer, heldout, shifcon, args
    )
    del model
    for name, config in configs.items():
        metrics_path = Path(config.out) / "metrics.json"
        start = time.perf_counter()
        metrics = (
            json.loads(metrics_path.read_text())
            if metrics_path.is_file()
            else run_shifcon_train(config)
        )
        metrics["wall_seconds"] = round(time.perf_counter() - start, 1)
        result["train"][name] = metrics
        from peft import PeftModel

        base, tokenizer = load_causal_lm(shifcon.base_model)
        model = PeftModel.from_pretrained(base, f"{config.out}/adapter").eval()
        result["heldout_nll"][name] = score(
            model, tokenizer, heldout, shifcon if config.objective.shift else None, args
        )
        print(name, result["heldout_nll"][name], flush=True)
    result["loadavg_at_end"] = os.getloadavg()
    out = Path(args.out)
    atomic_write_text(out, json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    print(json.dumps(result["heldout_nll"], indent=2))


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nll = result["heldout_nll"]
    systems = list(nll)
    langs = list(next(iter(nll.values())))
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        xs = [j + i * width for j in range(len(langs))]
        ax.bar(xs, [nll[system][lang] for lang in langs], width, label=system)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(langs))], langs)
    ax.set_ylabel("held-out NLL (nats/token, John)")
    ax.set_title(f"ShifCon vs LoRA, same data and steps (area [{result['a']}, {result['b']}])")
    low = min(min(v.values()) for v in nll.values())
    ax.set_ylim(bottom=max(0.0, low - 0.5))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
