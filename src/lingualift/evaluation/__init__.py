"""Evaluation: perplexity, multiple-choice benchmarks, long context, lm-eval bridge, reports.

Submodules are imported on use so that ``import lingualift.evaluation`` stays light.
"""

from lingualift.evaluation.perplexity import (
    PerplexityResult,
    check_context_length,
    model_max_length,
    perplexity,
    perplexity_by_language,
)

__all__ = [
    "PerplexityResult",
    "check_context_length",
    "model_max_length",
    "perplexity",
    "perplexity_by_language",
]
