"""Logits processors for one row: bias, penalties, masks and the sampling filters.

Each takes one row's scores (logits, or probabilities for the sampling
filters: a 1-D float tensor over the vocabulary) and returns them changed
(in place where it can). The definitions follow vLLM's
sampler, which follows OpenAI's documentation for the OpenAI parameters:

* ``logit_bias`` is added to the logits;
* presence and frequency penalties count *generated* tokens only:
  ``logit -= frequency * count + presence * (count > 0)``;
* the repetition penalty (CTRL, Keskar et al. 2019) covers prompt and
  generated tokens: a positive logit is divided by it, a negative one
  multiplied, so the token always becomes less likely;
* on the probabilities after temperature, ``min_p`` drops tokens below
  ``min_p`` times the most likely one, ``top_k`` keeps the k most likely,
  ``top_p`` the smallest set whose probability reaches ``top_p`` (zeroing a
  probability and sampling is the same as masking the logit: multinomial
  sampling renormalizes).

:mod:`~lingualift.serving.decoding` runs them in vLLM's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NEG_INF = float("-inf")


def add_logit_bias(scores: Any, bias: Sequence[tuple[int, float]]) -> Any:
    """``scores[token] += value`` for every (token, value) of ``bias``."""
    import torch

    if bias:
        ids = torch.tensor([token for token, _ in bias], device=scores.device)
        values = torch.tensor([value for _, value in bias], device=scores.device)
        scores.index_add_(0, ids, values.to(scores.dtype))
    return scores


def penalize_repetition(scores: Any, ids: Any, penalty: float) -> Any:
    """CTRL's repetition penalty on the tokens ``ids`` (a long tensor of distinct ids)."""
    import torch

    if penalty != 1.0 and ids.numel():
        values = scores[ids]
        scores[ids] = torch.where(values > 0, values / penalty, values * penalty)
    return scores


def penalize_frequency_presence(
    scores: Any, ids: Any, counts: Any, frequency: float, presence: float
) -> Any:
    """OpenAI's penalties on the generated tokens ``ids`` (distinct), ``counts`` times each."""
    if (frequency or presence) and ids.numel():
        scores[ids] -= frequency * counts.to(scores.dtype) + presence
    return scores


def mask_tokens(scores: Any, ids: Sequence[int]) -> Any:
    """Make the tokens ``ids`` impossible."""
    if ids:
        scores[list(ids)] = NEG_INF
    return scores


def keep_allowed(scores: Any, allowed: Any) -> Any:
    """Make every token outside the bool mask ``allowed`` impossible."""
    return scores.masked_fill_(~allowed, NEG_INF)


def filter_min_p(probs: Any, min_p: float) -> Any:
    """Zero the probability of tokens below ``min_p`` times the most likely token's."""
    if min_p > 0.0:
        probs = probs.masked_fill(probs < min_p * probs.max(), 0.0)
    return probs


def filter_top_k(probs: Any, k: int) -> Any:
    """Keep the ``k`` most likely tokens (and any tied with the k-th); 0 keeps all."""
    if 0 < k < probs.shape[-1]:
        kth = probs.topk(k).values[-1]
        probs = probs.masked_fill(probs < kth, 0.0)
    return probs


def filter_top_p(probs: Any, top_p: float) -> Any:
    """Keep the smallest set of most likely tokens whose probability reaches ``top_p``.

    ``probs`` must sum to 1 (renormalize after another filter).
    """
    import torch

    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # Keep a token while the mass before it is below top_p (the first token always stays).
        drop = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return probs
