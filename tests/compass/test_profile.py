"""ClusterProfile: fit once, assign later, save and load, refuse another encoder."""

from __future__ import annotations

import numpy as np
import pytest

from lingualift.compass import EmbeddedSet, GapSampler
from lingualift.compass.profile import ClusterProfile
from lingualift.errors import LingualiftError

from .conftest import ENC, blobs


def langs_for(n, codes):
    return np.array(codes)[np.arange(n) % len(codes)]


def test_fit_assign_save_load_round_trip(tmp_path):
    make = blobs(seed=3)
    x, topics = make(600, [1 / 6] * 6)
    offset = np.random.default_rng(9).normal(size=16)
    langs = langs_for(600, ["sw", "fr"])
    x = x + np.where(langs[:, None] == "fr", 1.5 * offset, 0)  # a language direction
    data = EmbeddedSet.from_vectors(x, ENC, langs=langs)
    profile = ClusterProfile.fit(data, 6, seed=0)
    assert profile.n_clusters == 6 and set(profile.language_means) == {"sw", "fr"}
    labels, cosine = profile.assign(data)
    # Clusters follow the topics, not the languages.
    purity = np.mean(
        [np.bincount(topics[labels == c]).max() / (labels == c).sum() for c in range(6)]
    )
    assert purity > 0.9
    profile.histograms["reference"] = profile.histogram(labels)
    loaded = ClusterProfile.load(profile.save(tmp_path))
    again, cosine_again = loaded.assign(data)
    np.testing.assert_array_equal(labels, again)
    np.testing.assert_allclose(cosine, cosine_again, atol=1e-6)
    np.testing.assert_array_equal(loaded.histograms["reference"], np.bincount(labels, minlength=6))
    assert loaded.settings["seed"] == 0 and loaded.encoder == ENC
    distances = loaded.distances(data)
    assert distances.shape == (600,) and np.all(distances >= -1e-6)


def test_unseen_languages_are_centred_on_their_own_mean_and_other_spaces_refused():
    make = blobs(seed=4)
    x, _ = make(400, [0.25, 0.25, 0.25, 0.25, 0, 0])
    profile = ClusterProfile.fit(
        EmbeddedSet.from_vectors(x, ENC, langs=langs_for(400, ["sw", "fr"])), 4, seed=0
    )
    y, _ = make(200, [0.25, 0.25, 0.25, 0.25, 0, 0])
    shifted = y + 2.0 * np.random.default_rng(1).normal(size=16)  # a new language's offset
    new = EmbeddedSet.from_vectors(shifted, ENC, langs=np.full(200, "de"))
    reference, _ = profile.assign(EmbeddedSet.from_vectors(y, ENC, langs=np.full(200, "sw")))
    placed, _ = profile.assign(new)
    assert np.mean(placed == reference) > 0.9
    with pytest.raises(LingualiftError, match="come from other-encoder.*fitted on toy-encoder"):
        profile.assign(EmbeddedSet.from_vectors(y, "other-encoder"))
    with pytest.raises(LingualiftError, match="size 8 cannot be placed in a profile of size 16"):
        profile.assign(EmbeddedSet.from_vectors(y[:, :8], ENC))


def test_the_sampler_learns_its_profile_in_fit(gap_data, tmp_path):
    target, training, pool, _ = gap_data
    sampler = GapSampler(encoder=ENC, center_languages=False, n_clusters=6).fit(
        target, training, pool
    )
    first = sampler.select(budget=80)
    profile = ClusterProfile.load(sampler.profile_.save(tmp_path / "p.safetensors"))
    np.testing.assert_array_equal(profile.assign(pool)[0][first.indices], first.clusters)
    assert sampler.select(budget=80).indices.tolist() == first.indices.tolist()
    assert profile.histograms["target"].sum() == len(target)
