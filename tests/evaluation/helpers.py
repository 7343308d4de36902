"""Small generated benchmark files and lm-eval task YAMLs for the evaluation tests."""

from __future__ import annotations

from pathlib import Path

SUBJECTS = ("astronomy", "world_religions")


def mcq_rows(n: int = 8, lang: str = "sw", n_options: int = 4, prefix: str = "q") -> list[dict]:
    rows = []
    for i in range(n):
        row = {
            "sample_id": f"{prefix}{lang}{i}",
            "question": f"Swali {i}: ni nini {i * 7}?",
            "answer": "ABCDEFGHIJ"[i % n_options],
            "subject": SUBJECTS[i % 2],
            "subject_category": "STEM" if i % 2 == 0 else "Humanities",
            "lang": lang,
        }
        for j, letter in enumerate("abcdefghij"[:n_options]):
            row[f"option_{letter}"] = f"chaguo {letter} {i * j}"
        rows.append(row)
    return rows


def lm_eval_task(folder: Path, data: Path, name: str = "tiny_gmmlu") -> Path:
    """A local lm-eval multiple-choice task with the same prompt as lingualift's."""
    from lingualift.evaluation.lmeval_bridge import write_lmeval_task

    write_lmeval_task(data, folder, name)
    return folder


def lm_eval_loglikelihoods(
    folder: Path, model: str, model_args: str, n: int = 4, lang: str = "sw"
) -> tuple[Path, dict, dict[str, list[float]]]:
    """lm-eval's ``simple_evaluate`` of ``model`` on ``n`` local MCQ rows written to ``folder``.

    Returns the data file (for lingualift to score the same rows), lm-eval's output and
    its per-sample option log-likelihoods by ``sample_id``.
    """
    import lm_eval
    from lm_eval.tasks import TaskManager

    from ..helpers import write_jsonl

    data = write_jsonl(folder / "test.jsonl", mcq_rows(n, lang))
    tasks = lm_eval_task(folder / "tasks", data)
    out = lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=["tiny_gmmlu"],
        task_manager=TaskManager(include_path=str(tasks)),
        log_samples=True,
        batch_size=4,
        device="cpu",
    )
    theirs = {
        s["doc"]["sample_id"]: [r[0][0] for r in s["resps"]] for s in out["samples"]["tiny_gmmlu"]
    }
    return data, out, theirs
