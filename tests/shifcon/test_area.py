"""Subspace distance, the band rule and its plot."""

from __future__ import annotations

import pytest
import torch

from lingualift.shifcon.area import choose_area, choose_band, plot_curve, projection_distance

from .conftest import random_vectors


def test_projection_distance_bounds():
    eye = torch.eye(6)
    assert projection_distance(eye[:2], eye[:2]) == pytest.approx(0.0, abs=1e-7)
    assert projection_distance(eye[:2], eye[2:4]) == pytest.approx(1.0)
    # Same span, different basis: distance 0. One shared direction of two: sqrt(1/2).
    rotated = torch.stack([eye[0] + eye[1], eye[0] - eye[1]]) / 2**0.5
    assert projection_distance(eye[:2], rotated) == pytest.approx(0.0, abs=1e-3)  # float32 input
    assert projection_distance(eye[:2], torch.stack([eye[0], eye[2]])) == pytest.approx(0.5**0.5)


def test_band_rule_picks_the_lowest_middle_window():
    curve = [0.9, 0.8, 0.7, 0.6, 0.5, 0.2, 0.25, 0.3, 0.6, 0.7, 0.8, 0.9, 0.95, 0.9, 0.8, 0.1, 0.05]
    # 16 layers: width max(2, round(1.5)) = 2, region layers 4..12; the low tail at 15-16 is outside.
    assert choose_band(curve, 16) == (5, 7)
    assert choose_band(curve, 16, width=3) == (4, 7)
    assert choose_band(list(range(33)), 32) == (8, 11)  # monotone curve: earliest window of width 3


def test_choose_area_and_plot(tmp_path):
    from lingualift.testing import tiny_causal_lm

    model, _ = tiny_causal_lm("llama", hidden_size=32, num_layers=8)
    vectors = random_vectors(model)
    gen = torch.Generator().manual_seed(0)
    for lang in vectors.languages:
        q, _ = torch.linalg.qr(torch.randn(9, 32, 3, generator=gen))
        vectors.bases[lang] = q.transpose(1, 2)
    vectors.bases["sw"][3:6] = vectors.bases["en"][3:6]  # sw joins en's subspace in the middle
    a, b, record = choose_area(vectors)
    assert record["curves"]["sw"][4] == pytest.approx(0.0, abs=1e-3)
    assert (a, b) == (3, 5)
    path = plot_curve(record, tmp_path / "curve.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
