"""Configuration of ``lingualift eval``: one dataclass, readable from a YAML recipe."""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass
class EvalConfig:
    task: Literal["global-mmlu", "mmlu-prox", "perplexity", "longcontext"] = "global-mmlu"
    """What to measure: a multiple-choice benchmark, per-language perplexity, or long context."""
    backend: Literal["lingualift", "lm-eval"] = "lingualift"
    """'lingualift' runs lingualift's scorers; 'lm-eval' runs lm_eval_tasks through lm-eval
    with the 'lingualift' model type (adapters and ShifCon applied the same way)."""
    model: str = "embedded:gemma-3-270m"
    """Base model: embedded:<name>, a local folder, or a hub id."""
    adapters: str | None = None
    """PEFT adapter folder(s) applied on the base model, several joined by '+' (merged in order)."""
    shifcon: str | None = None
    """ShifCon folder; its shift is applied per language of each question."""
    dtype: str = "float32"
    """Model weights dtype: float32, bfloat16 or float16."""
    device: str | None = None
    """Torch device (cpu, cuda, cuda:1); default: the model's."""
    data: str = "hub"
    """Questions: 'hub', an hf: spec, a Parquet/CSV/JSONL file or a folder of <lang>_<split> files.
    For perplexity: a records file (text + lang), or 'corpus' for the embedded corpus."""
    dev_data: str | None = None
    """Where the few-shot dev questions are; default: the same source, dev split."""
    split: str = "test"
    """Split evaluated."""
    langs: list[str] = dataclasses.field(default_factory=list)
    """Languages to evaluate (empty: every language in the data)."""
    subjects: list[str] = dataclasses.field(default_factory=list)
    """Only these subjects or subject categories (empty: all)."""
    limit: int | None = None
    """At most this many questions (or texts) per language."""
    num_fewshot: int = 0
    """Few-shot examples per question, from the dev split of the same language."""
    mode: Literal["loglikelihood", "cot"] = "loglikelihood"
    """Score answer letters by log-likelihood, or generate chain-of-thought and read the answer."""
    batch_size: int = 16
    """Sequences per forward pass."""
    max_new_tokens: int = 256
    """Generation budget for cot mode and long-context answers."""
    max_length: int | None = None
    """Perplexity window in tokens (default: the model's limit, at most 2048)."""
    stride: int | None = None
    """Perplexity stride in tokens (default: half the window)."""
    books: str = "nt"
    """Corpus books used as held-out text for perplexity/long context when data='corpus'."""
    lc_tasks: list[str] = dataclasses.field(
        default_factory=lambda: ["niah_single", "niah_multi", "niah_none", "cwe"]
    )
    """Long-context tasks: niah_single, niah_multi, niah_none, cwe."""
    lengths: list[int] = dataclasses.field(default_factory=lambda: [1024, 4096])
    """Long-context prompt lengths in tokens (1k to 32k)."""
    n_per_length: int = 10
    """Long-context prompts per task, language and length."""
    seed: int = 0
    """Seed of the long-context generators."""
    lm_eval_tasks: str = ""
    """Backend lm-eval: comma-separated lm-eval task names."""
    lm_eval_include_path: str | None = None
    """Backend lm-eval: folder of extra task YAMLs (local tasks)."""
    output: str = "results/eval.json"
    """Results JSON (lm-eval shaped), written atomically."""
    log_samples: bool = False
    """Keep every scored sample (prompt, log-likelihoods, prediction) in the results."""
