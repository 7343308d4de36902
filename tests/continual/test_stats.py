"""The statistics: MMD²_u against the published formula, p-values, Holm, the tests' calibration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import binom

from lingualift.continual.stats import (
    exceedance_bound,
    exceedance_law,
    holm,
    js_rows,
    js_test,
    min_resamples,
    mmd2_unbiased,
    mmd_test,
    novelty_test,
    radius_rank,
    resampling_pvalue,
)


def test_mmd2_unbiased_matches_gretton_eq3_by_hand():
    # Gretton et al. (2012), eq. 3, on 1-d points with k(a, b) = exp(-(a - b)^2 / (2 s^2)).
    x, y, s2 = [0.0, 1.0, 3.0], [0.5, 2.0], 2.0
    k = lambda a, b: math.exp(-((a - b) ** 2) / (2 * s2))  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(a, b) for a, b in itertools.permutations(x, 2)) / (m * (m - 1))
    yy = sum(k(a, b) for a, b in itertools.permutations(y, 2)) / (n * (n - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    expected = xx + yy - 2 * xy
    got = mmd2_unbiased(np.array(x)[:, None], np.array(y)[:, None], s2)
    assert got == pytest.approx(expected, rel=1e-12)
    # The pairs written out for the first term: k(0,1) twice, k(0,3) twice, k(1,3) twice.
    assert xx == pytest.approx((2 * math.exp(-1 / 4) + 2 * math.exp(-9 / 4) + 2 * math.exp(-1)) / 6)


def test_mmd_permutation_statistic_equals_direct_formula():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 5)), rng.normal(loc=0.8, size=(40, 5))
    result = mmd_test(x, y, 99, np.random.default_rng(1), level=0.05)
    direct = mmd2_unbiased(x, y, result.detail["bandwidth"])
    assert result.statistic == pytest.approx(direct, rel=1e-4, abs=1e-6)
    assert result.pvalue == pytest.approx(0.01)  # nothing in the null reaches a clear shift
    same = mmd_test(x, rng.normal(size=(40, 5)), 99, np.random.default_rng(1), level=0.05)
    assert same.pvalue > 0.05


def test_resampling_pvalue_and_min_resamples():
    assert resampling_pvalue(5.0, np.arange(10)) == pytest.approx(6 / 11)  # 5..9 reach it
    assert resampling_pvalue(100.0, np.arange(10)) == pytest.approx(1 / 11)
    assert min_resamples(0.05) == 59 and 1 / (59 + 1) <= 0.05 / 3


def test_js_rows_and_test():
    assert js_rows([1, 0], [0, 1])[0] == pytest.approx(1.0)
    assert js_rows([3, 3], [1, 1])[0] == pytest.approx(0.0)
    labels = np.repeat(np.arange(4), 100)
    reference = np.bincount(labels)
    rng = np.random.default_rng(0)
    stable = js_test([25, 24, 26, 25], reference, labels, 500, rng, 0.05 / 3)
    shifted = js_test([70, 10, 10, 10], reference, labels, 500, rng, 0.05 / 3)
    assert stable.pvalue > 0.2 and shifted.pvalue < 0.01
    assert shifted.statistic > shifted.threshold > stable.statistic


def test_novelty_bound_is_the_beta_quantile_of_the_radius_exceedance():
    rank = radius_rank(499, 0.98)
    assert rank == 490  # the 490th of 499 distances: 10 of 500 expected beyond it
    assert exceedance_law(499, rank) == (10, 490)
    # P(pi > bound) = 1 - confidence when pi ~ Beta(10, 490): checked by drawing pi.
    bound = exceedance_bound(499, rank, 0.99)
    draws = np.random.default_rng(0).beta(10, 490, size=200_000)
    assert np.mean(draws > bound) == pytest.approx(0.01, abs=0.001)
    assert exceedance_bound(499, rank, 0.5) < bound < exceedance_bound(499, rank, 0.999)


def test_novelty_test_is_the_binomial_tail_at_the_bound():
    rank = radius_rank(499, 0.98)
    bound = exceedance_bound(499, rank, 0.99)
    calm = novelty_test(4, 200, rank, 499, 0.05 / 3)
    loud = novelty_test(30, 200, rank, 499, 0.05 / 3)
    assert calm.pvalue == pytest.approx(binom.sf(3, 200, bound))
    assert loud.pvalue == pytest.approx(binom.sf(29, 200, bound)) and loud.pvalue < 1e-6
    assert calm.detail["reference_rate"] == pytest.approx(0.02)
    assert calm.detail["rate_bound"] == pytest.approx(bound, abs=1e-6)
    # The threshold is the smallest share whose p-value reaches the level.
    count = round(loud.threshold * 200)
    assert binom.sf(count - 1, 200, bound) <= 0.05 / 3 < binom.sf(count - 2, 200, bound)
    assert calm.statistic < loud.threshold <= loud.statistic
    # A lower confidence allows less: the same count is rarer at a smaller bound.
    assert (
        novelty_test(12, 200, rank, 499, 0.05 / 3, confidence=0.9).pvalue
        < novelty_test(12, 200, rank, 499, 0.05 / 3).pvalue
    )


def test_holm():
    out = holm({"js": 0.004, "mmd": 0.02, "novelty": 0.2}, alpha=0.05)
    assert out["drift"] and out["rejected"] == ["js", "mmd"]  # 0.004 <= .05/3, 0.02 <= .05/2
    assert out["levels"] == pytest.approx({"js": 0.05 / 3, "mmd": 0.025, "novelty": 0.05}, abs=1e-6)
    assert not holm({"js": 0.02, "mmd": 0.02, "novelty": 0.02}, alpha=0.05)["drift"]
