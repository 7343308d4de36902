"""The paired bootstrap: its point estimate, its coverage, and when it says 'no difference'."""

import numpy as np
import pytest

from lingualift.jobs.experiments.stats import (
    difference_in_differences,
    items_needed,
    mean_nll,
    paired_difference,
)


def runs(rng, shift=0.0, seeds=3, items=150, tokens=40):
    """Per-seed (nll_sum, n_tokens) rows: item difficulty shared, seed and noise per run."""
    difficulty = np.random.default_rng(99).normal(5.0, 0.5, items)
    counts = np.random.default_rng(98).integers(10, tokens, items)
    out = {}
    for s in range(seeds):
        per_token = difficulty + shift + rng.normal(0, 0.02) + rng.normal(0, 0.1, items)
        out[s] = [(float(v * c), int(c)) for v, c in zip(per_token, counts, strict=True)]
    return out


def test_a_real_difference_is_found_and_the_estimate_is_right():
    rng = np.random.default_rng(0)
    better, worse = runs(rng, shift=-0.05), runs(rng)
    result = paired_difference(better, worse, n_boot=1000)
    assert result["difference"] == pytest.approx(-0.05, abs=0.03)
    assert result["ci95"][0] < result["difference"] < result["ci95"][1] < 0
    assert result["verdict"] == "lower" and len(result["per_seed"]) == 3
    single = mean_nll(better, n_boot=500)
    assert single["ci95"][0] < single["mean"] < single["ci95"][1]


def test_equal_systems_rarely_show_a_difference():
    shown = 0
    for trial in range(20):
        rng = np.random.default_rng(trial)
        result = paired_difference(runs(rng), runs(rng), n_boot=300, seed=trial)
        shown += result["verdict"] != "no difference shown"
    assert shown <= 3  # a 95% interval: about one in twenty by chance


def test_a_seedless_baseline_pairs_with_every_seed_and_mismatches_are_refused():
    rng = np.random.default_rng(1)
    system, base = runs(rng, shift=-0.2), runs(rng, seeds=1)
    assert paired_difference(system, base, n_boot=200)["verdict"] == "lower"
    with pytest.raises(ValueError, match="different items"):
        paired_difference(system, runs(rng, items=10), n_boot=10)
    assert items_needed(0.1, 0.02) == 97


def test_difference_in_differences_finds_an_effect_only_one_condition_has():
    rng = np.random.default_rng(2)
    gap = (runs(rng, shift=-0.05), runs(rng))
    control = (runs(rng, items=80), runs(rng, items=80))
    result = difference_in_differences(gap, control, n_boot=1000)
    assert result["difference"] == pytest.approx(-0.05, abs=0.03)
    assert result["ci95"][0] < result["difference"] < result["ci95"][1] < 0
    same = difference_in_differences(gap, (runs(rng, shift=-0.05), runs(rng)), n_boot=1000)
    assert same["verdict"] == "no difference shown"
    with pytest.raises(ValueError, match="same seeds"):
        difference_in_differences(gap, (runs(rng, seeds=2), runs(rng, seeds=2)), n_boot=10)
