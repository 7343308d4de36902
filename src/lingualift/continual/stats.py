"""The drift monitor's statistics: three two-sample tests and one rule that combines them.

Each test compares one window of production queries with the reference usage
of the current adapter version and returns a p-value under "the window is a
sample of the reference distribution":

- :func:`js_test`: Jensen-Shannon divergence (bits) of the window's cluster
  histogram against the reference histogram. Its null distribution is a
  parametric bootstrap of both sides: ``B`` windows of the window's size and
  ``B`` references of the reference's size are resampled from the reference
  embedding sample's cluster labels, and the JS of each pair is computed (so
  the noise of the reference histogram itself is accounted for).
- :func:`mmd_test`: maximum mean discrepancy on the embeddings with an RBF
  kernel ``k(x, y) = exp(-||x - y||^2 / (2 s^2))``, ``s^2`` the median of the
  pooled pairwise squared distances (median heuristic), the unbiased
  estimate MMD²_u of Gretton et al. (2012, eq. 3), and a permutation p-value
  (one kernel matrix, every permutation in one matrix product).
- :func:`novelty_test`: the count of window queries farther from every
  centroid than the novelty radius, with a p-value that holds *given the
  reference*, not only on average over references. The radius is an order
  statistic of held-out calibration distances, so the probability ``pi`` that
  a reference-like query lies beyond it is a Beta draw shared by every window
  of that reference. The test bounds that draw from above with confidence
  ``c`` (an exact Beta quantile) and runs the one-sided binomial test at the
  bound: for all but a fraction ``1 - c`` of references, every stable
  window is flagged with probability at most the level (see docs/continual.md
  for the argument and the measurements).

:func:`holm` combines the three p-values (Holm-Bonferroni at family level
``alpha``): a window drifts when the procedure rejects at least one null,
which happens exactly when the smallest p-value is at most ``alpha / 3``. The
chance that a window drawn from the reference is flagged is then at most
``alpha`` whatever the dependence between the tests, as far as each test is
valid. The novelty p-value is valid given the reference; the MMD permutation
p-value is exact on average over references (it permutes the pooled sample)
and the JS bootstrap approximately so; given one fixed reference, the
reference's own sampling noise moves their false-alarm rates (measured in
docs/continual.md). p-values of resampling tests are
``(1 + #{null >= observed}) / (B + 1)``, valid at every ``B``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from lingualift.errors import require

NAMES = ("js", "mmd", "novelty")


@dataclasses.dataclass
class TestResult:
    """One test on one window."""

    statistic: float
    pvalue: float
    threshold: float | None = None
    """The statistic's critical value at the per-test level the decision uses (alpha / 3)."""
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "statistic": _round(self.statistic),
            "pvalue": _round(self.pvalue),
            "threshold": (
                _round(self.threshold)
                if self.threshold is not None and math.isfinite(self.threshold)
                else None
            ),
            **self.detail,
        }


def _round(value: float, digits: int = 6) -> float:
    return float(round(float(value), digits))


def resampling_pvalue(observed: float, null: np.ndarray) -> float:
    """``(1 + #{null >= observed}) / (B + 1)``: never 0, exact under exchangeability."""
    null = np.asarray(null, dtype=np.float64)
    return float((1 + np.count_nonzero(null >= observed - 1e-12)) / (len(null) + 1))


def _upper_quantile(null: np.ndarray, level: float) -> float:
    """The smallest statistic whose resampling p-value is at most ``level``."""
    ordered = np.sort(np.asarray(null, dtype=np.float64))[::-1]
    # p(observed) = (1 + #{null >= observed}) / (B + 1) <= level  <=>  # <= level (B + 1) - 1
    allowed = math.floor(level * (len(ordered) + 1) + 1e-9) - 1
    if allowed < 0:
        return float("inf")
    if allowed >= len(ordered):
        return float("-inf")
    return float(ordered[allowed] + 1e-12)


# -- Jensen-Shannon on cluster histograms --------------------------------------------------


def js_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise Jensen-Shannon divergence (bits) between count or share matrices."""
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))
    p = p / p.sum(axis=1, keepdims=True)
    q = q / q.sum(axis=1, keepdims=True)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=1)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum(axis=1)
    return 0.5 * kl_p + 0.5 * kl_q


def js_test(
    window_counts: np.ndarray,
    reference_counts: np.ndarray,
    sample_labels: np.ndarray,
    n_bootstrap: int,
    rng: np.random.Generator,
    level: float,
) -> TestResult:
    """JS(window || reference) with a two-sided parametric bootstrap p-value (see module doc)."""
    window_counts = np.asarray(window_counts, dtype=np.float64)
    reference_counts = np.asarray(reference_counts, dtype=np.float64)
    n = int(window_counts.sum())
    n_ref = int(reference_counts.sum())
    require(n > 0 and n_ref > 0, "A JS test needs a non-empty window and reference.")
    k = len(reference_counts)
    shares = np.bincount(np.asarray(sample_labels, dtype=np.int64), minlength=k)[:k]
    shares = shares / shares.sum()
    observed = float(js_rows(window_counts, reference_counts)[0])
    windows = rng.multinomial(n, shares, size=n_bootstrap)
    references = rng.multinomial(n_ref, shares, size=n_bootstrap)
    null = js_rows(windows, references)
    return TestResult(
        observed,
        resampling_pvalue(observed, null),
        _upper_quantile(null, level),
        {"n_bootstrap": int(n_bootstrap)},
    )


# -- MMD -----------------------------------------------------------------------------------


def squared_distances(
    x: np.ndarray, y: np.ndarray | None = None, dtype: type = np.float64
) -> np.ndarray:
    """Pairwise squared Euclidean distances (clipped at 0)."""
    x = np.asarray(x, dtype=dtype)
    y = x if y is None else np.asarray(y, dtype=dtype)
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.maximum(sq, 0.0)


def median_bandwidth(sq: np.ndarray, max_points: int = 300) -> float:
    """Median heuristic: ``s^2`` = median of the off-diagonal pairwise squared distances.

    Above ``max_points`` rows the median is taken over the first ``max_points``
    rows' pairs (the rows are in random order, and a median of 45k pairs is as
    good as one of millions).
    """
    n = min(len(sq), max_points)
    upper = sq[:n, :n][np.triu_indices(n, k=1)]
    value = float(np.median(upper)) if len(upper) else 1.0
    return value if value > 0 else 1.0


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Gretton et al. (2012), eq. 3: the unbiased MMD² between samples ``x`` and ``y``.

    ``bandwidth`` is ``s^2`` of the kernel ``exp(-||a - b||^2 / (2 s^2))``.
    """
    m, n = len(x), len(y)
    require(m >= 2 and n >= 2, "MMD²_u needs at least two points on each side.")
    kxx = np.exp(-squared_distances(x) / (2 * bandwidth))
    kyy = np.exp(-squared_distances(y) / (2 * bandwidth))
    kxy = np.exp(-squared_distances(x, y) / (2 * bandwidth))
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def _mmd2_from_masks(kernel: np.ndarray, masks: np.ndarray, m: int) -> np.ndarray:
    """MMD²_u for every row of ``masks`` (1 = first sample, m ones per row), vectorised.

    With ``a`` a row of ``masks``: ``S_xx = a K a``, ``S_xy = a K 1 - S_xx``,
    ``S_yy = 1 K 1 - S_xx - 2 S_xy``; the diagonal of an RBF kernel is 1.
    """
    total_n = kernel.shape[0]
    n = total_n - m
    row_sums = kernel.sum(axis=1)
    total = float(row_sums.sum())
    s_xx = np.einsum("pi,pi->p", masks @ kernel, masks)
    s_xy = masks @ row_sums - s_xx
    s_yy = total - s_xx - 2.0 * s_xy
    return (s_xx - m) / (m * (m - 1)) + (s_yy - n) / (n * (n - 1)) - 2.0 * s_xy / (m * n)


def mmd_test(
    window: np.ndarray,
    reference: np.ndarray,
    n_permutations: int,
    rng: np.random.Generator,
    level: float,
    max_points: int = 500,
) -> TestResult:
    """RBF-kernel MMD²_u with the median heuristic and a permutation p-value.

    Each side is subsampled to at most ``max_points`` rows (without replacement)
    so that a window costs the same whatever its size.
    """
    window = np.asarray(window, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)
    if len(window) > max_points:
        window = window[np.sort(rng.choice(len(window), max_points, replace=False))]
    if len(reference) > max_points:
        reference = reference[np.sort(rng.choice(len(reference), max_points, replace=False))]
    m, n = len(window), len(reference)
    require(m >= 2 and n >= 2, "The MMD test needs at least two points on each side.")
    pooled = np.concatenate([window, reference])
    sq = squared_distances(pooled, dtype=np.float32)
    some = rng.permutation(m + n)[:300]  # the median sees rows of both sides
    bandwidth = median_bandwidth(sq[np.ix_(some, some)])
    kernel = np.exp(-sq / (2 * bandwidth)).astype(np.float32)
    observed_mask = np.zeros((1, m + n), dtype=np.float32)
    observed_mask[0, :m] = 1
    observed = float(_mmd2_from_masks(kernel, observed_mask, m)[0])
    # Random permutations: the first m positions of each permutation form the "window".
    order = np.argsort(rng.random((n_permutations, m + n)), axis=1)[:, :m]
    masks = np.zeros((n_permutations, m + n), dtype=np.float32)
    np.put_along_axis(masks, order, 1.0, axis=1)
    null = _mmd2_from_masks(kernel, masks, m)
    return TestResult(
        observed,
        resampling_pvalue(observed, null),
        _upper_quantile(null, level),
        {"bandwidth": _round(bandwidth), "n_permutations": int(n_permutations), "n_x": m, "n_y": n},
    )


# -- novelty -------------------------------------------------------------------------------


def radius_rank(n_calibration: int, quantile: float) -> int:
    """1-based rank of the calibration distance used as the novelty radius."""
    require(n_calibration >= 1, "The novelty radius needs at least one calibration distance.")
    return min(n_calibration, max(1, math.ceil(quantile * (n_calibration + 1))))


def exceedance_law(n_calibration: int, rank: int) -> tuple[int, int]:
    """``(a, b)`` of the Beta law of ``P(new distance > radius)`` over calibration draws.

    With continuous distances ``G(S_(rank)) ~ Beta(rank, n + 1 - rank)`` for the
    ``rank``-th smallest of ``n`` held-out distances, so the exceedance
    probability ``1 - G(S_(rank))`` is ``Beta(n + 1 - rank, rank)``; with ties it
    is stochastically smaller, and everything below stays conservative.
    """
    require(
        1 <= rank <= n_calibration,
        f"The radius rank must be in 1..{n_calibration}; got {rank}.",
    )
    return n_calibration + 1 - rank, rank


def exceedance_bound(n_calibration: int, rank: int, confidence: float) -> float:
    """Upper ``confidence`` bound of the exceedance probability of the radius.

    A fraction ``1 - confidence`` of calibration draws puts the radius so low
    that more reference-like queries than this lie beyond it.
    """
    from scipy.stats import beta

    require(0 < confidence < 1, f"The novelty confidence must be in (0, 1); got {confidence}.")
    a, b = exceedance_law(n_calibration, rank)
    return float(beta.ppf(confidence, a, b))


def novelty_test(
    n_novel: int,
    n: int,
    rank: int,
    n_calibration: int,
    level: float,
    confidence: float = 0.99,
) -> TestResult:
    """One-sided test that more of the window lies beyond the radius than the reference allows.

    Given the reference, the ``n`` window queries fall beyond the radius
    independently with one unknown probability ``pi`` (the same for every
    window of this reference), so the count is Binomial(n, pi) exactly. ``pi``
    is at most ``bound = exceedance_bound(n_calibration, rank, confidence)``
    except for a fraction ``1 - confidence`` of references, and the binomial
    tail grows with ``pi``; so the p-value ``P(Binomial(n, bound) >= n_novel)``
    is valid given the reference for all those references. (A beta-binomial or
    permutation p-value is valid only on average over references: see
    docs/continual.md.)
    """
    from scipy.stats import binom

    require(n >= 1 and 0 <= n_novel <= n, f"{n_novel} novel queries in a window of {n}.")
    bound = exceedance_bound(n_calibration, rank, confidence)
    tails = binom.sf(np.arange(n + 1) - 1, n, bound)  # P(X >= k) for k = 0..n
    # Smallest count whose p-value is at most ``level``: the critical share.
    critical = np.flatnonzero(tails <= level)
    threshold = float(critical[0] / n) if len(critical) else float("inf")
    a, b = exceedance_law(n_calibration, rank)
    return TestResult(
        n_novel / n,
        float(min(1.0, tails[n_novel])),
        threshold,
        {
            "n_novel": int(n_novel),
            "reference_rate": _round(a / (a + b)),
            "rate_bound": _round(bound),
            "confidence": float(confidence),
        },
    )


# -- the decision rule ---------------------------------------------------------------------


def holm(pvalues: dict[str, float], alpha: float) -> dict[str, Any]:
    """Holm-Bonferroni at family level ``alpha``: which nulls are rejected, and at what level.

    Sorted p-values ``p_(1) <= ... <= p_(m)`` are compared with ``alpha / (m - i + 1)``;
    the procedure stops at the first that is not below its level. The window
    drifts when at least one is rejected (iff ``min p <= alpha / m``).
    """
    ordered = sorted(pvalues.items(), key=lambda kv: kv[1])
    m = len(ordered)
    rejected: list[str] = []
    levels: dict[str, float] = {}
    stopped = False
    for i, (name, p) in enumerate(ordered):
        levels[name] = alpha / (m - i)
        if not stopped and p <= levels[name]:
            rejected.append(name)
        else:
            stopped = True
    return {
        "drift": bool(rejected),
        "rejected": rejected,
        "levels": {k: _round(v) for k, v in levels.items()},
        "rule": f"Holm-Bonferroni over {', '.join(pvalues)} at alpha={alpha:g}",
    }


def min_resamples(alpha: float, n_tests: int = len(NAMES)) -> int:
    """Fewest resamples for which a resampling p-value can reach ``alpha / n_tests``."""
    return math.ceil(n_tests / alpha) - 1
