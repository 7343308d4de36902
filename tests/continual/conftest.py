"""Synthetic embeddings for the monitor: a mixture of topics in a small space."""

from __future__ import annotations

import numpy as np
import pytest

from lingualift.compass.embedding import EmbeddedSet
from lingualift.continual.reference import Reference

ENC = "toy"
DIM = 24
TOPICS = 6


class Mixture:
    """Queries drawn from topic centres plus noise; ``shares`` picks the topics."""

    def __init__(self, seed: int = 0) -> None:
        self.centers = np.random.default_rng(seed).normal(size=(TOPICS, DIM))
        self.rng = np.random.default_rng(seed + 1)

    def draw(self, n: int, shares=None) -> tuple[EmbeddedSet, list[str]]:
        shares = np.full(TOPICS, 1 / TOPICS) if shares is None else np.asarray(shares)
        topics = self.rng.choice(TOPICS, n, p=shares / shares.sum())
        vectors = self.centers[topics] + 0.7 * self.rng.normal(size=(n, DIM))
        texts = [f"topic{t} query {i}" for i, t in enumerate(topics)]
        return EmbeddedSet.from_vectors(vectors, ENC, langs=["sw"] * n), texts


@pytest.fixture
def mixture():
    return Mixture()


@pytest.fixture
def reference(mixture):
    usage, texts = mixture.draw(2400)
    return Reference.build(usage, "sw", texts=texts, n_clusters=6, seed=0, version="sw/v1")
