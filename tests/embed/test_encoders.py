import numpy as np
import pytest

from lingualift.embed import (
    BatchedEncoder,
    CachedEncoder,
    CausalLMEncoder,
    E5NanoEncoder,
    EmbeddingCache,
    get_encoder,
)
from lingualift.errors import LingualiftError


class CountingEncoder(BatchedEncoder):
    """Deterministic toy encoder that records every text it is asked to embed."""

    name = "counting"
    dim = 8
    batch_size = 3

    def __init__(self):
        self.seen: list[str] = []

    def _encode_batch(self, texts):
        self.seen.extend(texts)
        return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts])


def test_batched_encoder_normalizes_and_batches():
    encoder = CountingEncoder()
    vectors = encoder.encode([f"t{i}" for i in range(7)])
    assert vectors.shape == (7, 8) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_cache_embeds_each_text_once_across_instances(tmp_path):
    inner = CountingEncoder()
    cached = CachedEncoder(inner, EmbeddingCache(tmp_path / "c.sqlite"))
    first = cached.encode(["a", "b", "a", "c"])
    assert inner.seen == ["a", "b", "c"]  # duplicates inside one call embedded once
    again = CachedEncoder(inner, EmbeddingCache(tmp_path / "c.sqlite")).encode(["c", "a", "d"])
    assert inner.seen == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(again[0], first[3])
    np.testing.assert_array_equal(again[1], first[0])
    assert EmbeddingCache(tmp_path / "c.sqlite").stats() == {"counting": 4}


def test_cache_rejects_vectors_of_another_size(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    CachedEncoder(CountingEncoder(), cache).encode(["a"])
    other = CountingEncoder()
    other.dim = 4
    with pytest.raises(LingualiftError, match="size 8, not 4"):
        CachedEncoder(other, cache).encode(["a"])


def test_wrong_output_shape_is_reported():
    class Broken(CountingEncoder):
        def _encode_batch(self, texts):
            return np.zeros((len(texts), 5))

    with pytest.raises(LingualiftError, match="expected"):
        Broken().encode(["x"])


def test_causal_lm_encoder_mean_pools_without_padding(tiny_lm):
    model, tokenizer = tiny_lm
    encoder = CausalLMEncoder(model, tokenizer, layer=-1, batch_size=4)
    together = encoder.encode(["short", "a much longer sentence here"])
    alone = encoder.encode(["short"])
    assert together.shape == (2, model.config.hidden_size)
    # Padding must not leak into the mean: the same text gives the same vector.
    np.testing.assert_allclose(together[0], alone[0], atol=1e-4)


def test_e5_nano_puts_translations_closer_than_unrelated_text():
    encoder = E5NanoEncoder()
    vectors = encoder.encode(
        [
            "The weather is nice today.",
            "Hali ya hewa ni nzuri leo.",
            "The stock market fell sharply.",
        ]
    )
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_get_encoder_specs():
    assert isinstance(get_encoder("e5-nano"), CachedEncoder)
    assert get_encoder("e5-nano:passage", cache=False).name.endswith(":passage")
    with pytest.raises(LingualiftError, match="Unknown encoder"):
        get_encoder("word2vec")
