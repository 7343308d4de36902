import numpy as np
import pytest

from lingualift.compass import SphericalKMeans, choose_k, cluster_shares, gap_priorities
from lingualift.compass.gaps import integer_quotas, js_divergence, quotas, water_fill
from lingualift.errors import LingualiftError


def test_choose_k_rule():
    assert choose_k(10_000) == 71
    assert choose_k(200) == 10
    assert choose_k(12) == 2  # at least five target points per cluster, never below 2
    assert choose_k(10_000_000) == 256
    with pytest.raises(LingualiftError, match="empty"):
        choose_k(0)


def test_shares_priorities_and_js():
    p_t = cluster_shares(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(p_t, [4 / 7, 2 / 7, 1 / 7])  # add-one smoothing
    p_t = cluster_shares(np.array([0, 0, 0, 0, 0, 1, 1, 1]), 3)  # 6/11, 4/11, 1/11
    p_tr = cluster_shares(np.array([], dtype=np.int64), 3)  # uniform
    w = gap_priorities(p_t, p_tr)
    assert w[0] > w[1] > 0 and w[2] == 0  # clipped where training covers the cluster
    assert js_divergence(p_t, p_t) == pytest.approx(0.0)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)


def test_water_fill_passes_excess_on():
    alloc = water_fill(np.array([0.5, 0.3, 0.2, 0.0]), 100, np.array([10, 100, 100, 100]))
    assert alloc[0] == 10 and alloc[3] == 0
    assert alloc.sum() == pytest.approx(100)
    assert alloc[1] / alloc[2] == pytest.approx(1.5)
    ints = integer_quotas(alloc, np.array([10, 100, 100, 100]), 100)
    assert ints.sum() == 100 and ints[0] == 10
    # tau < 1 sharpens towards the largest gap
    sharp = quotas(np.array([0.6, 0.4]), 100, np.array([1e9, 1e9]), tau=0.5)
    assert sharp[0] / sharp[1] == pytest.approx((0.6 / 0.4) ** 2)


def test_spherical_kmeans_is_deterministic_and_chunked():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    a = SphericalKMeans(5, seed=3, chunk_size=512).fit(x)
    b = SphericalKMeans(5, seed=3, chunk_size=100_000).fit(x)
    np.testing.assert_array_equal(a.centroids_, b.centroids_)
    la, sa = a.predict(x)
    lb, _ = b.predict(x)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_allclose(sa, (x * a.centroids_[la]).sum(1), atol=1e-5)
    with pytest.raises(LingualiftError, match="size 4"):
        a.predict(x[:, :4])


def test_any_positive_tau_gives_quotas_that_fill_the_budget(gap_data):
    from lingualift.compass import GapSampler
    from lingualift.compass.gaps import quotas, tempered

    w = np.array([0.3, 0.02, 0.0, 1e-4])
    sharp = tempered(w, 0.001)  # w ** 1000 underflows to 0 for every term
    assert sharp[0] == 1.0 and sharp[2] == 0.0 and np.all(sharp >= 0)
    assert quotas(w, 10, np.full(4, 100), tau=0.001).sum() == pytest.approx(10)
    target, training, pool, topics = gap_data
    sampler = GapSampler(encoder="toy-encoder", center_languages=False, n_clusters=6, tau=0.001)
    selection = sampler.fit(target, training, pool).select(budget=50)
    assert len(selection) == 50 and np.mean(topics[selection.indices] == 0) > 0.9


def test_faiss_gpu_option_follows_what_faiss_reports(monkeypatch):
    import faiss

    from lingualift.compass.clustering import SphericalKMeans, resolve_use_gpu
    from lingualift.errors import LingualiftError

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0, raising=False)
    assert resolve_use_gpu("auto") is False and resolve_use_gpu("false") is False
    with pytest.raises(LingualiftError, match="use_gpu=true needs a GPU build of FAISS"):
        resolve_use_gpu("true")
    with pytest.raises(LingualiftError, match="use_gpu must be one of auto, true, false"):
        SphericalKMeans(2, use_gpu="sometimes")
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    assert resolve_use_gpu("auto") is True and resolve_use_gpu(False) is False


def test_gpu_choice_reaches_faiss_kmeans_and_the_centroid_index(monkeypatch, gap_data):
    """The sampler's use_gpu goes down to faiss.Kmeans(gpu=...) and index_cpu_to_all_gpus
    (faked here: the CPU build has neither a GPU nor the conversion)."""
    import faiss

    from lingualift.compass import GapSampler

    real_kmeans = faiss.Kmeans
    asked, moved = [], []

    def kmeans(d, k, **kwargs):
        asked.append(kwargs.pop("gpu"))
        return real_kmeans(d, k, **kwargs)

    monkeypatch.setattr(faiss, "Kmeans", kmeans)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", lambda index: moved.append(index) or index, raising=False)  # fmt: skip
    target, training, pool, _ = gap_data
    for use_gpu, expected in (("auto", True), ("false", False)):
        sampler = GapSampler(encoder="toy-encoder", n_clusters=6, use_gpu=use_gpu, progress=False)
        selection = sampler.fit(target, training, pool).select(budget=20)
        assert len(selection) == 20 and asked[-1] is expected
    assert len(moved) == 1  # the centroid index went to the GPUs once, for the auto run
