"""Baselines that ship beside COMPASS, with the same interface and the same report.

* ``random``: uniform sample of the pool.
* ``lang-similarity`` (the papers' baseline): the ``k`` pool languages closest to
  the target by URIEL features, sampled uniformly.
* ``all``: the whole pool (naive multilingual fine-tuning); the budget is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lingualift.compass.sampler import BaseSampler, GapSampler, SelectionSpace
from lingualift.errors import LingualiftError, require


class RandomSampler(BaseSampler):
    """Uniform random sample of the pool within the budget."""

    method = "random"

    def _choose(
        self, space: SelectionSpace, budget: float
    ) -> tuple[Any, list[str], dict[str, Any]]:
        order = np.random.default_rng(self.seed).permutation(len(space.pool))
        taken, _ = self._take_in_order(space, order, budget)
        return taken, ["uniform random sample of the pool"] * len(taken), {}


class LangSimilaritySampler(BaseSampler):
    """Uniform sample from the ``k`` pool languages most similar to the target (URIEL).

    ``similarity`` can replace the URIEL lookup with any ``(target, lang) -> float``.
    """

    method = "lang-similarity"

    def __init__(
        self,
        k_languages: int = 3,
        similarity: Callable[[str, str], float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        require(k_languages >= 1, f"k_languages must be at least 1, got {k_languages}.")
        self.k_languages = k_languages
        self.similarity = similarity

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "k_languages": self.k_languages}

    def nearest(self, langs: list[str]) -> list[tuple[str, float]]:
        require(
            self.target_lang is not None,
            "lang-similarity needs the target language; set target_lang or give target "
            "records with a language.",
        )
        if self.similarity is None:
            from lingualift.compass.typology import similarities

            sims = similarities(self.target_lang, langs)
        else:
            sims = {lang: float(self.similarity(self.target_lang, lang)) for lang in langs}
        ranked = sorted(sims.items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked[: self.k_languages]

    def _choose(
        self, space: SelectionSpace, budget: float
    ) -> tuple[Any, list[str], dict[str, Any]]:
        langs = sorted(set(space.pool_langs.tolist()) - {"und"})
        require(langs, "lang-similarity needs a language for each pool item; none has one.")
        nearest = self.nearest(langs)
        names = {lang for lang, _ in nearest}
        members = np.flatnonzero(np.isin(space.pool_langs, list(names)))
        order = members[np.random.default_rng(self.seed).permutation(len(members))]
        taken, _ = self._take_in_order(space, order, budget)
        sims = dict(nearest)
        reasons = [
            f"language {space.pool_langs[row]} is among the {self.k_languages} closest to "
            f"{self.target_lang} (URIEL similarity {sims[space.pool_langs[row]]:.3f})"
            for row in taken
        ]
        return taken, reasons, {}


class AllSampler(BaseSampler):
    """The whole pool; ``budget`` must be None or cover the pool."""

    method = "all"

    def _choose(
        self, space: SelectionSpace, budget: float
    ) -> tuple[Any, list[str], dict[str, Any]]:
        rows = np.arange(len(space.pool))
        return rows, ["whole pool (method 'all')"] * len(rows), {}


SAMPLERS: dict[str, type[BaseSampler]] = {
    "compass": GapSampler,
    "random": RandomSampler,
    "lang-similarity": LangSimilaritySampler,
    "all": AllSampler,
}
METHODS = tuple(SAMPLERS)
"""Every selection method by name: COMPASS first, then the baselines."""


def make_sampler(method: str, **kwargs: Any) -> BaseSampler:
    """Build a sampler by name; keyword arguments a sampler does not take are dropped."""
    import inspect

    if method not in SAMPLERS:
        raise LingualiftError(f"Unknown method {method!r}; use one of {', '.join(METHODS)}.")
    cls = SAMPLERS[method]
    accepted = set(inspect.signature(BaseSampler.__init__).parameters)
    accepted |= set(inspect.signature(cls.__init__).parameters)
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})
