"""The logits processors one by one: their definitions and edge cases."""

from __future__ import annotations

import math

import torch

from lingualift.serving import logits as lp


def test_logit_bias_adds_to_the_named_tokens_only():
    scores = lp.add_logit_bias(torch.zeros(5), [(1, 2.0), (4, -3.0)])
    assert scores.tolist() == [0.0, 2.0, 0.0, 0.0, -3.0]
    assert lp.add_logit_bias(torch.ones(3), []).tolist() == [1.0, 1.0, 1.0]


def test_repetition_penalty_leaves_unseen_tokens_alone():
    scores = torch.tensor([2.0, -2.0, 2.0, -2.0])
    seen = torch.tensor([0, 1])
    assert lp.penalize_repetition(scores, seen, 2.0).tolist() == [1.0, -4.0, 2.0, -2.0]


def test_frequency_and_presence_penalties_read_counts():
    ids, counts = torch.tensor([1, 2]), torch.tensor([1, 3])
    scores = lp.penalize_frequency_presence(torch.zeros(3), ids, counts, 0.5, 0.25)
    assert scores.tolist() == [0.0, -0.75, -1.75]


def test_masks_rule_tokens_out():
    assert lp.mask_tokens(torch.zeros(3), [0, 2]).tolist() == [-math.inf, 0.0, -math.inf]
    allowed = torch.tensor([False, True, True])
    assert lp.keep_allowed(torch.zeros(3), allowed).tolist() == [-math.inf, 0.0, 0.0]


def test_top_k_keeps_ties_with_the_kth_token():
    probs = torch.tensor([0.4, 0.2, 0.2, 0.2])
    assert torch.equal(lp.filter_top_k(probs, 2), probs)
    assert lp.filter_top_k(torch.tensor([0.5, 0.25, 0.25]), 1).tolist() == [0.5, 0.0, 0.0]
    assert lp.filter_top_k(probs, 0) is probs


def test_top_p_always_keeps_the_most_likely_token():
    probs = torch.tensor([0.1, 0.6, 0.3])
    assert torch.allclose(lp.filter_top_p(probs, 0.01), torch.tensor([0.0, 0.6, 0.0]))
    assert torch.allclose(lp.filter_top_p(probs, 0.8), torch.tensor([0.0, 0.6, 0.3]))


def test_min_p_is_relative_to_the_most_likely_token():
    probs = torch.tensor([0.5, 0.2, 0.3])
    assert torch.allclose(lp.filter_min_p(probs, 0.5), torch.tensor([0.5, 0.0, 0.3]))
    assert lp.filter_min_p(probs, 0.0) is probs
