import numpy as np
import pytest

from lingualift.compass import (
    AllSampler,
    EmbeddedSet,
    GapSampler,
    LangSimilaritySampler,
    RandomSampler,
    make_sampler,
)
from lingualift.errors import LingualiftError

from .conftest import ENC, ToyEncoder, blobs

# The toy blobs have no language offset, so clustering runs on the raw vectors.
RAW = {"encoder": ENC, "center_languages": False}


def test_compass_fills_the_gap_and_beats_random(gap_data):
    target, training, pool, topics = gap_data
    sel = GapSampler(**RAW, n_clusters=6, seed=0).fit(target, training, pool).select(budget=120)
    assert len(sel) == 120 and len(set(sel.indices.tolist())) == 120
    # Topic 0 is used by the target and absent from training: it must dominate.
    assert np.mean(topics[sel.indices] == 0) > 0.7
    rnd = RandomSampler(**RAW, n_clusters=6, seed=0).fit(target, training, pool).select(budget=120)
    assert sel.report.js_before == rnd.report.js_before
    assert sel.report.js_after < rnd.report.js_after < sel.report.js_before
    assert sel.reasons[0].startswith("cluster ") and "gap" in sel.reasons[0]
    quota = [c["quota"] for c in sel.report.clusters]
    assert sum(quota) == pytest.approx(120)


def test_same_seed_same_selection(gap_data):
    target, training, pool, _ = gap_data
    runs = [GapSampler(**RAW, seed=7).fit(target, training, pool).select(budget=50) for _ in "ab"]
    np.testing.assert_array_equal(runs[0].indices, runs[1].indices)


def test_water_filling_when_gap_cluster_runs_short(gap_data):
    target, training, pool, topics = gap_data
    budget = 400  # far more than topic 0 holds in the pool (~200)
    sel = GapSampler(**RAW, n_clusters=6).fit(target, training, pool).select(budget=budget)
    assert len(sel) == budget
    assert np.sum(topics[sel.indices] == 0) >= 0.9 * np.sum(topics == 0)
    assert any("ran short" in r for r in sel.reasons)


def test_dedup_and_language_cap(gap_data):
    target, training, pool, _ = gap_data
    vectors = np.asarray(pool.vectors).copy()
    vectors[1::2] = vectors[0::2]  # every item has an exact twin
    twins = EmbeddedSet.from_vectors(vectors, ENC, langs=np.full(len(vectors), "fr"))
    sel = GapSampler(**RAW, n_clusters=6, dedup_threshold=0.99).fit(target, training)
    chosen = sel.select(twins, 60).indices
    assert len(set((chosen // 2).tolist())) == len(chosen)  # never both twins
    capped = GapSampler(**RAW, n_clusters=6, language_cap=0.25).fit(target, training)
    langs = capped.select(pool, 100).langs
    assert max(np.unique(langs, return_counts=True)[1]) <= 25


def test_language_centering_reaches_across_languages():
    """Each language shifts every vector; only centred clustering finds the target's topic."""
    # Training is broad (as it usually is), so the Swahili mean is mostly language.
    make = blobs(seed=1, dim=16, n_topics=8)
    rng = np.random.default_rng(5)
    offsets = {lang: 3.0 * rng.normal(size=16) for lang in ("sw", "fr", "de")}
    target, _ = make(200, [0.5, 0.5, 0, 0, 0, 0, 0, 0])
    training, _ = make(400, [0, 1 / 7, 1 / 7, 1 / 7, 1 / 7, 1 / 7, 1 / 7, 1 / 7])
    pool, topics = make(900, [1 / 8] * 8)
    langs = np.array(["fr", "de"] * 450)
    pool = pool + np.stack([offsets[lang] for lang in langs])
    t = EmbeddedSet.from_vectors(target + offsets["sw"], ENC, langs=["sw"] * 200)
    tr = EmbeddedSet.from_vectors(training + offsets["sw"], ENC, langs=["sw"] * 400)
    p = EmbeddedSet.from_vectors(pool, ENC, langs=langs)
    hits = {}
    for center in (True, False):
        sampler = GapSampler(encoder=ENC, n_clusters=8, center_languages=center)
        hits[center] = np.mean(topics[sampler.fit(t, tr, p).select(budget=100).indices] == 0)
    assert hits[True] > 0.7 > hits[False]


def test_token_budget_and_records(toy_records):
    target, training, pool = toy_records
    sampler = GapSampler(encoder=ToyEncoder(), n_clusters=3, progress=False)
    sel = sampler.fit(target, training, pool).select(budget=60, unit="tokens")
    assert 0 < sel.report.spent <= 60 and sel.report.unit == "tokens"
    record = sel.records[0]
    assert {"cluster", "score", "reason", "pool_index"} <= set(record.meta)
    assert record.lang in {"fr", "de", "id"} and sel.report.target_lang == "sw"


def test_baselines_share_the_interface(gap_data):
    target, training, pool, _ = gap_data
    sims = {"fr": 0.9, "de": 0.8, "id": 0.1, "ar": 0.2}.get
    ls = LangSimilaritySampler(
        **RAW, k_languages=2, similarity=lambda t, lang: sims(lang), target_lang="sw"
    )
    sel = ls.fit(target, training, pool).select(budget=100)
    assert set(sel.langs.tolist()) == {"fr", "de"} and len(sel) == 100
    everything = AllSampler(**RAW).fit(target, training, pool).select()
    assert len(everything) == len(pool)
    assert isinstance(make_sampler("random", **RAW, tau=2.0), RandomSampler)
    with pytest.raises(LingualiftError, match="Unknown method"):
        make_sampler("best")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("budget", "larger than the pool"),
        ("encoders", "different encoders"),
        ("dims", "sizes differ"),
        ("empty_pool", "pool is empty"),
        ("empty_target", "target usage is empty"),
        ("tokens_without_counts", "token counts"),
    ],
)
def test_bad_input_fails_with_one_sentence(gap_data, case, message):
    target, training, pool, _ = gap_data
    sampler = GapSampler(**RAW, n_clusters=4)
    with pytest.raises(LingualiftError, match=message) as info:
        if case == "empty_target":
            sampler.fit([], training)
        sampler.fit(target, training)
        if case == "budget":
            sampler.select(pool, len(pool) + 1)
        elif case == "encoders":
            sampler.select(EmbeddedSet.from_vectors(np.asarray(pool.vectors), "other"), 10)
        elif case == "dims":
            sampler.select(EmbeddedSet.from_vectors(np.asarray(pool.vectors)[:, :8], ENC), 10)
        elif case == "empty_pool":
            sampler.select([], 10)
        else:
            sampler.select(pool, 10, unit="tokens")
    assert str(info.value).count(". ") == 0  # one sentence


@pytest.fixture
def target_language_pool():
    """gap_data's blobs with a language per row: every fourth pool item is in the target's."""
    make = blobs()
    target, _ = make(240, [0.5, 0.5, 0, 0, 0, 0])
    training, _ = make(240, [0, 0.5, 0.5, 0, 0, 0])
    pool, _ = make(1200, [1 / 6] * 6)
    langs = np.array(["sw", "fr", "de", "id"])[np.arange(1200) % 4]
    return (
        EmbeddedSet.from_vectors(target, ENC, langs=["sw"] * 240),
        EmbeddedSet.from_vectors(training, ENC),
        EmbeddedSet.from_vectors(pool, ENC, langs=langs),
    )


def test_plain_compass_selects_as_before_the_language_boost_existed(target_language_pool):
    """With target_language_boost=1 (the default) the selection is the one COMPASS made before
    the option existed (indices recorded from that code on this data)."""
    import hashlib

    sampler = GapSampler(**RAW, n_clusters=6, seed=0).fit(*target_language_pool)
    indices = sampler.select(budget=90).indices
    assert indices[:10].tolist() == [305, 833, 790, 26, 470, 148, 383, 27, 981, 182]
    assert hashlib.sha1(indices.tobytes()).hexdigest() == "91729acc0b4aaed993c113b38fd3209f69d6a4d1"
    assert sampler.settings()["target_language_boost"] == 1.0


def test_target_language_first_or_boosted_fills_each_clusters_quota_the_same(
    target_language_pool,
):
    target, training, pool = target_language_pool
    langs = np.asarray(pool.langs)

    def select(**option):
        sampler = GapSampler(**RAW, n_clusters=6, seed=0, **option)
        return sampler, sampler.fit(target, training, pool).select(budget=90)

    _, plain = select()
    _, factor = select(target_language_boost=1.5)
    sampler, first = select(target_language_first=True)
    # Only the ranking inside a cluster changes: the quotas are plain COMPASS's.
    quotas = [c["quota"] for c in plain.report.clusters]
    assert [c["quota"] for c in first.report.clusters] == quotas
    shares = [np.mean(langs[s.indices] == "sw") for s in (plain, factor, first)]
    assert shares[0] < shares[1] <= shares[2]
    # first: a cluster takes another language only once all its target-language items are taken.
    labels, _ = sampler.profile_.assign(pool, sampler.anchors_, False)
    chosen = set(first.indices.tolist())
    for cluster in np.unique(first.clusters):
        rows = first.indices[first.clusters == cluster]
        if (langs[rows] != "sw").any():
            mine = np.flatnonzero((labels == cluster) & (langs == "sw"))
            assert set(mine.tolist()) <= chosen, cluster
    assert any(langs[first.indices] != "sw")  # the test above had something to check
    assert "target language ranked first" in first.reasons[0]
    assert "target language boosted x1.5" in factor.reasons[np.flatnonzero(
        langs[factor.indices] == "sw")[0]]  # fmt: skip
    assert first.report.settings["target_language_first"] is True


def test_a_target_language_preference_needs_the_target_language(target_language_pool):
    _, training, pool = target_language_pool
    unlabelled = EmbeddedSet.from_vectors(np.asarray(target_language_pool[0].vectors), ENC)
    sampler = GapSampler(**RAW, n_clusters=6, target_language_boost=2.0)
    with pytest.raises(LingualiftError, match="needs the target language; set target_lang"):
        sampler.fit(unlabelled, training, pool).select(budget=10)
    for bad in (0, float("inf")):
        with pytest.raises(LingualiftError, match="positive finite factor"):
            GapSampler(**RAW, target_language_boost=bad)
