"""Benchmark: held-out loss after training with boundary-aware packing vs cross-document packing.

Both runs train the same LoRA, from the same seed, for the same number of steps,
on the same packed rows of Swahili verses from the embedded corpus; they differ
only in what a token may attend to. *Boundary-aware* is what `packing=true` does
(per-document ``position_ids``, a block-diagonal causal mask, no label on a
document's first token); *cross-document* is the earlier packing (one causal mask
over the whole row, so a verse attends to the unrelated verses before it). The
held-out loss is measured on held-out verses, each alone, the same way for both.

    nice -n 19 python benchmarks/adapters_packing.py                 # embedded Gemma 3 270M
    nice -n 19 python benchmarks/adapters_packing.py --tiny --steps 60 --batch 8 --seq 128 \
        --lr 5e-3 --train 400 --heldout 64                           # tiny random Gemma 3
    python benchmarks/adapters_packing.py --model <folder> --steps 20   # any model

Writes the figures as JSON (--out, default docs/adapters_packing.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from lingualift.adapters import LoraTrainer
from lingualift.adapters.data import IGNORE_INDEX, Example, tokenize_example
from lingualift.atomic import atomic_write_text
from lingualift.data import ParallelCorpus
from lingualift.models import load_causal_lm
from lingualift.training import LoraSettings, TrainingArgs


def cross_document(rows: list[dict], max_length: int) -> list[dict]:
    """The earlier packing: concatenate, cut into rows, one causal mask per row."""
    ids = [t for r in rows for t in r["input_ids"]]
    labels = [t for r in rows for t in r["labels"]]
    return [
        {"input_ids": ids[i : i + max_length], "labels": labels[i : i + max_length]}
        for i in range(0, len(ids), max_length)
        if any(label != IGNORE_INDEX for label in labels[i : i + max_length])
    ]


def run(mode: str, args: argparse.Namespace, train: list, heldout: list) -> dict:
    model, tokenizer = load_causal_lm(args.model)
    settings = TrainingArgs(
        lr=args.lr,
        max_steps=args.steps,
        batch_size=args.batch,
        max_length=args.seq,
        warmup_steps=0,
        seed=0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        trainer = LoraTrainer(
            model, tokenizer, settings, LoraSettings(r=8, dropout=0.0), run_dir=tmp
        )
        trainer.load_data(train, heldout, packing=True)
        trainer.eval_rows = [tokenize_example(e, tokenizer, args.seq) for e in heldout]
        if mode == "cross-document":
            raw = [tokenize_example(e, tokenizer, 10**9) for e in train]
            trainer.train_rows = cross_document(raw, args.seq)
        began = time.perf_counter()
        trained = trainer.fit(progress=False)
        seconds = time.perf_counter() - began
    return {
        "mode": mode,
        "train_rows": len(trainer.train_rows),
        "eval_loss_before": round(trained.metrics["eval_loss_before"], 5),
        "eval_loss_after": round(trained.metrics["eval_loss"], 5),
        "train_loss_last": round(trained.metrics["train_loss_last"], 5),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:gemma-3-270m")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a tiny random Gemma 3 (hidden 64, 4 layers, byte tokenizer) instead of --model",
    )
    parser.add_argument("--lang", default="sw")
    parser.add_argument("--train", type=int, default=200, help="training verses")
    parser.add_argument("--heldout", type=int, default=48, help="held-out verses")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="docs/adapters_packing.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.tiny:
        from lingualift.testing import byte_tokenizer, save_tiny_causal_lm

        folder = Path(tempfile.mkdtemp()) / "tiny-gemma3"
        vocab = len(byte_tokenizer())
        save_tiny_causal_lm(folder, "gemma3", hidden_size=64, num_layers=4, vocab_size=vocab)
        args.model = str(folder)
    corpus = ParallelCorpus()
    verses = corpus.monolingual(args.lang, "40-43", limit=args.train + args.heldout)
    examples = [Example(id=r.id, kind="text", text=r.text) for r in verses]
    train, heldout = examples[: args.train], examples[args.train :]
    runs = [run(mode, args, train, heldout) for mode in ("boundary-aware", "cross-document")]
    aware, cross = runs
    result = {
        "benchmark": "held-out loss after LoRA training: boundary-aware vs cross-document packing",
        "command": "nice -n 19 python benchmarks/adapters_packing.py "
        + ("--tiny " if args.tiny else "")
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k not in ("out", "tiny", "model"))
        + ("" if args.tiny else f" --model {args.model}"),
        "model": "tiny random Gemma 3 (hidden 64, 4 layers, byte tokenizer)"
        if args.tiny
        else args.model,
        "machine": f"{platform.machine()}, {args.threads} threads",
        "runs": runs,
        "difference_eval_loss": round(aware["eval_loss_after"] - cross["eval_loss_after"], 5),
    }
    atomic_write_text(Path(args.out), json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
