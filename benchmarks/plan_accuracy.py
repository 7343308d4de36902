"""Benchmark: the memory planner's estimates against peak memory measured on this machine.

For each case, a clean subprocess (:mod:`lingualift.memcheck`) loads the model on the CPU,
reads every weight, and measures the peak resident memory of a perplexity pass and of
LoRA training steps (the last step's peak over the memory before it: activations plus
gradients, the optimizer state already allocated); the planner predicts the same parts
from the model's config alone. Results go to a JSON file, and the table in docs/scale.md
(between its ``plan-accuracy`` markers) is rewritten from every model in that file.

    python benchmarks/plan_accuracy.py                 # the embedded Gemma 3 270M (about 4 GB)
    python benchmarks/plan_accuracy.py --tiny          # a random hidden-512, 32k-vocab Llama
    python benchmarks/plan_accuracy.py --model <folder or spec> --batch 4 --seq 128

Writes docs/plan_accuracy.json (--out) and updates docs/scale.md (--doc; --no-doc skips it).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

from lingualift.atomic import atomic_write_text
from lingualift.memcheck import measure
from lingualift.placement import DeviceCapabilities, ModelSettings
from lingualift.planning import MemoryPlanner, model_shape
from lingualift.testing import save_tiny_causal_lm
from lingualift.training import LoraSettings

START, END = "<!-- plan-accuracy:start -->", "<!-- plan-accuracy:end -->"


def run_case(model: str, batch: int, seq: int, dtype: str, checkpointing: bool) -> dict:
    """Measure one model/batch/dtype/checkpointing case and set the planner's figures beside."""
    verbs = ("train",) if checkpointing else ("eval", "train")
    measured = measure(
        model, verbs, batch, seq, dtype=dtype, gradient_checkpointing=checkpointing, timeout=3600
    )
    settings = ModelSettings(model=model, dtype=dtype, device="cpu")
    planner = MemoryPlanner(
        model_shape(settings), settings.resolve(DeviceCapabilities()), LoraSettings()
    )
    train = planner.plan("train", batch, seq, checkpointing)
    step = train.activations_bytes + train.gradients_bytes
    if checkpointing:  # the weights are the same as in the case without it
        rows = [("train step (checkpointing)", step, measured.train_peak_bytes)]
    else:
        evaluation = planner.plan("eval", batch, seq)
        rows = [
            ("weights", train.weights_bytes, measured.weights_bytes),
            ("train step", step, measured.train_peak_bytes),
            ("eval forward", evaluation.activations_bytes, measured.eval_peak_bytes),
        ]
    return {
        "batch": batch,
        "seq": seq,
        "dtype": dtype,
        "gradient_checkpointing": checkpointing,
        "seconds": round(measured.seconds, 1),
        "rows": [
            {
                "part": part,
                "estimate_bytes": int(estimate),
                "measured_bytes": int(actual),
                "error": round((estimate - actual) / actual, 4),
            }
            for part, estimate, actual in rows
        ],
    }


def table(results: dict) -> str:
    """The markdown table of every model in ``results``."""
    lines = [
        "| model | dtype | batch x seq | part | planned | measured (peak RSS) | error |",
        "| --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for name, entry in results.items():
        for case in entry["cases"]:
            for row in case["rows"]:
                lines.append(
                    f"| {name} | {case['dtype']} | {case['batch']} x {case['seq']} | {row['part']} "
                    f"| {row['estimate_bytes'] / 1e6:,.0f} MB | {row['measured_bytes'] / 1e6:,.0f} MB "
                    f"| {row['error']:+.1%} |"
                )
    return "\n".join(lines)


def update_doc(doc: Path, results: dict) -> None:
    text = doc.read_text("utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{doc} has no {START} ... {END} block to rewrite")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(doc, f"{head}{START}\n{table(results)}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:gemma-3-270m")
    parser.add_argument("--tiny", action="store_true", help="a random hidden-512, 32k-vocab Llama")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--out", default="docs/plan_accuracy.json")
    parser.add_argument("--doc", default="docs/scale.md")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model, name = args.model, args.model
        if args.tiny:
            model = str(
                save_tiny_causal_lm(
                    Path(tmp) / "tiny", "llama", hidden_size=512, num_layers=4, num_heads=8,
                    num_kv_heads=4, intermediate_size=1536, vocab_size=32000,
                )
            )  # fmt: skip
            name = "random Llama (hidden 512, 4 layers, 32k vocab)"
        cases = []
        for dtype in [d.strip() for d in args.dtypes.split(",") if d.strip()]:
            cases.append(run_case(model, args.batch, args.seq, dtype, checkpointing=False))
        cases.append(run_case(model, args.batch, args.seq, "float32", checkpointing=True))
    out = Path(args.out)
    results = json.loads(out.read_text("utf-8")) if out.is_file() else {}
    results[name] = {"machine": platform.processor() or platform.machine(), "cases": cases}
    atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    print(table({name: results[name]}))
    if not args.no_doc:
        update_doc(Path(args.doc), results)


if __name__ == "__main__":
    main()
