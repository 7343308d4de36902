"""Questions/s of lingualift's MCQ scorer vs lm-evaluation-harness's ``hf`` backend.

Both sides score the same local Global-MMLU-format task (Swahili questions built
from the embedded corpus) with the same in-memory model, zero-shot, same batch
size; rounds alternate (lm-eval, lingualift, lm-eval, ...) so machine load hits
both alike. Per-sample log-likelihoods are compared (parity within 1e-4).

    python benchmarks/eval_scoring.py                        # embedded Gemma 3 270M
    python benchmarks/eval_scoring.py --model tiny --questions 40   # seconds, for a smoke run

Writes docs/evaluation_benchmark.json (and prints a summary).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def build_task(folder: Path, n: int) -> Path:
    """A Global-MMLU-shaped JSONL of ``n`` Swahili questions and its lm-eval task YAML."""
    import random

    from lingualift.data import ParallelCorpus
    from lingualift.evaluation.lmeval_bridge import write_lmeval_task

    verses = [r.text for r in ParallelCorpus().monolingual("sw", "nt", limit=6 * n)]
    rng = random.Random(0)
    rows = []
    for i in range(n):
        options = [" ".join(v.split()[:10]) for v in rng.sample(verses, 4)]
        rows.append(
            {
                "sample_id": f"sw{i}",
                "question": f"Ni kifungu kipi kinachofuata? {verses[i]}",
                "option_a": options[0],
                "option_b": options[1],
                "option_c": options[2],
                "option_d": options[3],
                "answer": "ABCD"[i % 4],
                "subject": "world_religions",
                "subject_category": "Humanities",
                "lang": "sw",
            }
        )
    data = folder / "sw_test.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    write_lmeval_task(data, folder / "tasks", "bench_gmmlu_sw")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:gemma-3-270m", help="model spec, or 'tiny'")
    parser.add_argument("--questions", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="docs/evaluation_benchmark.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from lingualift.evaluation.mcq import evaluate_mcq, load_mcq
    from lingualift.models import load_causal_lm
    from lingualift.testing import tiny_causal_lm

    if args.model == "tiny":
        model, tokenizer = tiny_causal_lm("gemma3", hidden_size=64, num_layers=2)
    else:
        model, tokenizer = load_causal_lm(args.model)
    tmp = Path(tempfile.mkdtemp(prefix="lingualift-bench-"))
    data = build_task(tmp, args.questions)
    items = load_mcq(data)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size, device="cpu")
    manager = TaskManager(include_path=str(tmp / "tasks"))
    n_tokens = statistics.mean(len(tokenizer.encode(s["question"])) for s in map(vars, items))

    # One untimed warm-up per side: first calls pay for allocator growth and lazy imports.
    lm_eval.simple_evaluate(
        model=lm,
        tasks=["bench_gmmlu_sw"],
        task_manager=manager,
        limit=args.batch_size,
        batch_size=args.batch_size,
    )
    evaluate_mcq(
        model, tokenizer, items[: args.batch_size], batch_size=args.batch_size, progress=False
    )
    times = {"lm-eval hf": [], "lingualift": []}
    ref = mine = None
    for _ in range(args.rounds):
        start = time.perf_counter()
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=["bench_gmmlu_sw"],
            task_manager=manager,
            log_samples=True,
            batch_size=args.batch_size,
        )
        times["lm-eval hf"].append(time.perf_counter() - start)
        ref = {
            s["doc"]["sample_id"]: [r[0][0] for r in s["resps"]]
            for s in out["samples"]["bench_gmmlu_sw"]
        }
        start = time.perf_counter()
        mine = evaluate_mcq(
            model, tokenizer, load_mcq(data), batch_size=args.batch_size, progress=False
        )
        times["lingualift"].append(time.perf_counter() - start)

    diffs = [abs(a - b) for s in mine for a, b in zip(s.loglikelihoods, ref[s.id], strict=True)]
    qps = {k: args.questions / statistics.median(v) for k, v in times.items()}
    result = {
        "model": args.model,
        "questions": args.questions,
        "options": 4,
        "mean_question_tokens": round(n_tokens, 1),
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "questions_per_second": {k: round(v, 2) for k, v in qps.items()},
        "speedup": round(qps["lingualift"] / qps["lm-eval hf"], 2),
        "max_abs_loglikelihood_diff": max(diffs),
        "same_predictions": all(max(range(4), key=ref[s.id].__getitem__) == s.pred for s in mine),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}",
        "load_average_at_end": os.getloadavg(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    from lingualift.atomic import atomic_write_text

    atomic_write_text(args.out, json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
