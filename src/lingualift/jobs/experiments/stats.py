"""Paired comparisons with confidence intervals: a bootstrap over held-out items and seeds.

Two systems scored on the same held-out items give, per seed ``s`` and item
``i``, summed token NLLs ``a[s, i]`` and ``b[s, i]`` over ``n[i]`` tokens. The
statistic is the token-weighted mean NLL difference::

    D = sum_{s,i} (a[s, i] - b[s, i]) / (S * sum_i n[i])

(negative: the first system is better). Its 95% interval comes from a
bootstrap that resamples seeds and items with replacement, independently, the
same draw for both systems (they are paired), so the interval counts both
sources of variation: which held-out items were drawn, and which seeds.

With ``S`` seeds and ``N`` items of per-item difference spread ``sd`` (nats per
token, token-weighted), the interval's half-width is about
``1.96 * sqrt(sd_items**2 / N + sd_seeds**2 / S)``; :func:`items_needed` says
how many items make the item part of that small enough to resolve a given
difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PerText = Sequence[Sequence[float]]
"""``[(nll_sum, n_tokens), ...]`` of one system on one seed, one row per held-out item."""


def score_texts(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int
) -> dict[str, Any]:
    """Mean NLL of ``texts`` and, for the paired statistics, each text's ``[nll_sum, n_tokens]``."""
    from lingualift.evaluation import perplexity

    result = perplexity(model, tokenizer, texts, max_length=max_length, batch_size=batch_size)
    return {"nll": result.nll, "per_text": [[round(s, 6), c] for s, c in result.per_text]}


def _matrix(runs: Mapping[Any, PerText]) -> tuple[np.ndarray, np.ndarray]:
    """``(sums[S, N], counts[N])`` of one system's seeds (items in the same order)."""
    seeds = sorted(runs, key=str)
    sums = np.array([[row[0] for row in runs[s]] for s in seeds], dtype=np.float64)
    counts = np.array([row[1] for row in runs[seeds[0]]], dtype=np.float64)
    for s in seeds:
        if [row[1] for row in runs[s]] != counts.tolist():
            raise ValueError("the seeds of one system were scored on different items")
    return sums, counts


def _resample_weights(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """``[n_boot, n]`` multiplicities of a draw of ``n`` out of ``n`` with replacement."""
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)])


def _resampled_means(
    values: np.ndarray, counts: np.ndarray, seed_weights: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``sum(values) / (S * sum(counts))`` under each seed draw, with a fresh draw of items."""
    S, N = values.shape
    item_weights = _resample_weights(rng, N, len(seed_weights))
    totals = np.einsum("bs,si,bi->b", seed_weights, values, item_weights)
    return totals / (S * (item_weights @ counts))


def _verdict(low: float, high: float) -> str:
    return "lower" if high < 0 else "higher" if low > 0 else "no difference shown"


def _point(values: np.ndarray, counts: np.ndarray) -> float:
    return float(values.sum() / (len(values) * counts.sum()))


def _bootstrap(
    values: np.ndarray, counts: np.ndarray, n_boot: int, seed: int
) -> tuple[float, float, float]:
    """Mean, 2.5% and 97.5% of ``sum(values) / (S * sum(counts))`` over resampled seeds and items."""
    rng = np.random.default_rng(seed)
    stats = _resampled_means(values, counts, _resample_weights(rng, len(values), n_boot), rng)
    low, high = np.percentile(stats, [2.5, 97.5])
    return _point(values, counts), float(low), float(high)


def mean_nll(runs: Mapping[Any, PerText], n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """One system's token-weighted mean NLL with its 95% bootstrap interval."""
    sums, counts = _matrix(runs)
    point, low, high = _bootstrap(sums, counts, n_boot, seed)
    return {"mean": point, "ci95": [low, high], "seeds": len(sums), "items": len(counts)}


def _paired(a: Mapping[Any, PerText], b: Mapping[Any, PerText]) -> tuple[np.ndarray, np.ndarray]:
    """``(sums_a - sums_b [S, N], counts [N])``; a single run of ``b`` pairs with every seed of ``a``."""
    sums_a, counts = _matrix(a)
    sums_b, counts_b = _matrix(b)
    if counts_b.tolist() != counts.tolist():
        raise ValueError("the two systems were scored on different items")
    if len(sums_b) == 1 and len(sums_a) > 1:
        sums_b = np.repeat(sums_b, len(sums_a), axis=0)
    if sums_a.shape != sums_b.shape:
        raise ValueError("pair the same seeds of both systems")
    return sums_a - sums_b, counts


def paired_difference(
    a: Mapping[Any, PerText],
    b: Mapping[Any, PerText],
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """``NLL(a) - NLL(b)`` with its 95% interval, per-seed differences and the verdict.

    ``b`` may have a single run (a system without seeds, e.g. the base model);
    it is then compared with every seed of ``a``.
    """
    diff, counts = _paired(a, b)
    point, low, high = _bootstrap(diff, counts, n_boot, seed)
    per_seed = (diff.sum(axis=1) / counts.sum()).tolist()
    per_item = diff.sum(axis=0) / (len(diff) * counts)
    return {
        "difference": point,
        "ci95": [low, high],
        "per_seed": per_seed,
        "item_sd": float(np.std(per_item, ddof=1)) if len(per_item) > 1 else None,
        "verdict": _verdict(low, high),
    }


def items_needed(item_sd: float, difference: float, z: float = 1.96) -> int:
    """Held-out items for the item part of a 95% interval to be ``difference`` wide on each side."""
    return math.ceil((z * item_sd / difference) ** 2)


def difference_in_differences(
    first: tuple[Mapping[Any, PerText], Mapping[Any, PerText]],
    second: tuple[Mapping[Any, PerText], Mapping[Any, PerText]],
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """``(NLL(a) - NLL(b)) - (NLL(c) - NLL(d))`` for ``first = (a, b)``, ``second = (c, d)``.

    How much more ``a`` beats ``b`` in one condition than in another (a gap
    against its control), each condition scored on its own held-out items. The
    same seeds trained both conditions, so a bootstrap draw resamples seeds once
    for both and items independently per condition.
    """
    diff_1, counts_1 = _paired(*first)
    diff_2, counts_2 = _paired(*second)
    if len(diff_1) != len(diff_2):
        raise ValueError("both conditions need the same seeds")
    rng = np.random.default_rng(seed)
    seed_weights = _resample_weights(rng, len(diff_1), n_boot)
    stats = _resampled_means(diff_1, counts_1, seed_weights, rng) - _resampled_means(
        diff_2, counts_2, seed_weights, rng
    )
    low, high = np.percentile(stats, [2.5, 97.5])
    return {
        "difference": _point(diff_1, counts_1) - _point(diff_2, counts_2),
        "ci95": [float(low), float(high)],
        "verdict": _verdict(low, high),
    }
