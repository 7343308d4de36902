import numpy as np
import pytest

from lingualift.compass import EmbeddedSet
from lingualift.data import Record
from lingualift.embed import BatchedEncoder

ENC = "toy-encoder"


class ToyEncoder(BatchedEncoder):
    """Deterministic 16-d encoder: a text's vector is seeded by its first word (its topic)."""

    name = "toy"
    dim = 16
    batch_size = 8

    def _encode_batch(self, texts):
        out = []
        for text in texts:
            topic = text.split()[0]
            base = np.random.default_rng(sum(map(ord, topic))).normal(size=self.dim)
            noise = np.random.default_rng(sum(map(ord, text))).normal(size=self.dim)
            out.append(base + 0.15 * noise)
        return np.stack(out)


def blobs(seed=0, dim=16, n_topics=6):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_topics, dim))

    def make(n, probs):
        labels = rng.choice(n_topics, n, p=probs)
        return centers[labels] + 0.6 * rng.normal(size=(n, dim)), labels

    return make


@pytest.fixture
def gap_data():
    """Target on topics 0-1, training on 1-2, pool spread over all six topics."""
    make = blobs()
    target, _ = make(240, [0.5, 0.5, 0, 0, 0, 0])
    training, _ = make(240, [0, 0.5, 0.5, 0, 0, 0])
    pool, topics = make(1200, [1 / 6] * 6)
    langs = np.array(["fr", "de", "id", "ar"])[np.arange(1200) % 4]
    return (
        EmbeddedSet.from_vectors(target, ENC),
        EmbeddedSet.from_vectors(training, ENC),
        EmbeddedSet.from_vectors(pool, ENC, langs=langs),
        topics,
    )


@pytest.fixture
def toy_records():
    topics = ["river", "market", "prayer", "war", "harvest", "king"]

    def recs(prefix, lang, topic_ids, n):
        return [
            Record(
                id=f"{prefix}{i}",
                text=f"{topics[topic_ids[i % len(topic_ids)]]} words number {i} {prefix}",
                lang=lang,
            )
            for i in range(n)
        ]

    target = recs("t", "sw", [0, 1], 40)
    training = recs("r", "sw", [1, 2], 40)
    pool = [r for lang in ("fr", "de", "id") for r in recs(f"p{lang}", lang, range(6), 60)]
    return target, training, pool
