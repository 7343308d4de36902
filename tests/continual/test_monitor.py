"""DriftMonitor on synthetic embeddings: false alarms within the level, a shift detected and named."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from lingualift.compass.embedding import EmbeddedSet
from lingualift.continual.monitor import DriftMonitor
from lingualift.continual.reference import Reference
from lingualift.errors import LingualiftError

from .conftest import DIM, ENC, TOPICS


def test_stable_windows_false_alarm_rate_within_alpha(mixture, reference):
    alpha, windows = 0.05, 200
    monitor = DriftMonitor(reference, alpha=alpha, n_permutations=99, n_bootstrap=199)
    alarms = 0
    for _ in range(windows):
        window, texts = mixture.draw(60)
        alarms += monitor.update(window, texts=texts).drift
    # Under the null the count is at most Binomial(200, alpha); allow its 99.9% quantile.
    margin = binom.ppf(0.999, windows, alpha) / windows
    assert alarms / windows <= margin, (alarms, margin)


def test_shifted_mixture_detected_and_grown_cluster_named(mixture, reference):
    monitor = DriftMonitor(reference, alpha=0.05)
    shares = np.full(TOPICS, 0.5 / (TOPICS - 1))
    shares[2] = 0.5  # topic 2 goes from 1/6 of the queries to half
    window, texts = mixture.draw(100, shares)
    report = monitor.update(window, texts=texts)
    assert report.drift and "js" in report.decision["rejected"]
    top = report.grew[0]
    assert top["window_share"] > top["reference_share"] + 0.2
    assert all(text.startswith("topic2 ") for text in top["examples"])
    assert 1 <= len(top["examples"]) <= 3
    assert report.shrank and report.shrank[0]["change"] < 0
    assert report.shrank[0]["examples"]  # the reference's own examples of that cluster
    row = report.to_dict()
    assert row["drift"] and row["js"]["pvalue"] <= 0.05 / 3 and row["reference"] == "sw/v1"


def test_novel_queries_raise_the_novelty_test(mixture, reference):
    far = np.random.default_rng(7).normal(size=(40, DIM)) * 3  # no topic centre near them
    base, texts = mixture.draw(60)
    window = EmbeddedSet.from_vectors(np.concatenate([np.asarray(base.vectors), far]), ENC)
    report = DriftMonitor(reference).update(window, texts=texts + ["far"] * 40)
    assert report.tests["novelty"].pvalue < 1e-6 and report.drift


def test_reference_round_trip_and_refusals(tmp_path, mixture, reference):
    folder = tmp_path / "v1"
    folder.mkdir()
    reference.save(folder)
    loaded = Reference.load(folder)
    assert loaded.encoder == ENC and loaded.n_clusters == reference.n_clusters
    assert np.array_equal(loaded.histogram, reference.histogram)
    assert loaded.radius == pytest.approx(reference.radius)
    assert loaded.novelty_rate == pytest.approx(reference.novelty_rate)
    assert math.isclose(reference.novelty_rate, 0.02, abs_tol=0.003)
    assert reference.n_calibration == 1200  # half the usage calibrates the radius
    assert loaded.novelty_confidence == reference.novelty_confidence == 0.99
    assert loaded.novelty_rate_bound == pytest.approx(reference.novelty_rate_bound)
    assert len(loaded.sample) == 2000 and loaded.examples == reference.examples
    with pytest.raises(LingualiftError, match="already exists"):
        reference.save(folder)
    other = EmbeddedSet.from_vectors(np.ones((40, DIM)), "another-encoder")
    with pytest.raises(LingualiftError, match="built with encoder toy"):
        DriftMonitor(loaded).update(other)
    smaller = EmbeddedSet.from_vectors(np.ones((40, 8)), ENC)
    with pytest.raises(LingualiftError, match="24-d vectors"):
        DriftMonitor(loaded).update(smaller)
    with pytest.raises(LingualiftError, match="no reference profile"):
        Reference.load(tmp_path)


def test_small_windows_and_resample_counts_refused(mixture, reference):
    window, _ = mixture.draw(reference.min_window - 1)
    with pytest.raises(LingualiftError, match=f"at least {reference.min_window}"):
        DriftMonitor(reference).update(window)
    with pytest.raises(LingualiftError, match="use at least 59"):
        DriftMonitor(reference, alpha=0.05, n_permutations=20)


def test_a_small_reference_is_built_with_a_warning(mixture, caplog):
    usage, texts = mixture.draw(200)
    with caplog.at_level("WARNING", logger="lingualift.continual.reference"):
        Reference.build(usage, "sw", texts=texts, n_clusters=6, seed=0)
    assert "reference of 200 usage queries is small" in caplog.text
    caplog.clear()
    usage, texts = mixture.draw(900)
    with caplog.at_level("WARNING", logger="lingualift.continual.reference"):
        Reference.build(usage, "sw", texts=texts, n_clusters=6, seed=0)
    assert "is small" not in caplog.text
