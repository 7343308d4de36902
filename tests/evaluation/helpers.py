"""Small generated benchmark files and lm-eval task YAMLs for the evaluation tests."""

from __future__ import annotations

import json
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


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return path


def lm_eval_task(folder: Path, data: Path, name: str = "tiny_gmmlu") -> Path:
    """A local lm-eval multiple-choice task with the same prompt as lingualift's."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        f"""task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
description: "The following are multiple choice questions (with answers) about {{{{subject.replace('_', ' ')}}}}.\\n\\n"
doc_to_text: "{{{{question.strip()}}}}\\nA. {{{{option_a}}}}\\nB. {{{{option_b}}}}\\nC. {{{{option_c}}}}\\nD. {{{{option_d}}}}\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 0.0
"""
    )
    return folder
