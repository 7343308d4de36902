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
