"""COMPASS: choose auxiliary multilingual data by the semantic gaps of the target language.

>>> from lingualift.compass import GapSampler
>>> selection = GapSampler(encoder="e5-nano").fit(target_usage, training, pool).select(budget=2000)
>>> selection.records[0].meta["reason"], selection.report.js_after

Baselines with the same interface: :class:`RandomSampler`,
:class:`LangSimilaritySampler`, :class:`AllSampler` (or ``make_sampler(name)``).
"""

from lingualift.compass.baselines import (
    METHODS,
    AllSampler,
    LangSimilaritySampler,
    RandomSampler,
    make_sampler,
)
from lingualift.compass.clustering import SphericalKMeans, choose_k
from lingualift.compass.embedding import (
    EmbeddedSet,
    count_tokens,
    embed_records,
    embed_texts,
    save_vectors,
)
from lingualift.compass.gaps import cluster_shares, gap_priorities, js_divergence, water_fill
from lingualift.compass.profile import ClusterProfile
from lingualift.compass.report import SelectionReport
from lingualift.compass.sampler import BaseSampler, GapSampler, Selection

__all__ = [
    "METHODS",
    "AllSampler",
    "BaseSampler",
    "ClusterProfile",
    "EmbeddedSet",
    "GapSampler",
    "LangSimilaritySampler",
    "RandomSampler",
    "Selection",
    "SelectionReport",
    "SphericalKMeans",
    "choose_k",
    "cluster_shares",
    "count_tokens",
    "embed_records",
    "embed_texts",
    "gap_priorities",
    "js_divergence",
    "make_sampler",
    "save_vectors",
    "water_fill",
]
