"""Held-out scoring: the same numbers as perplexity() and score_cloze(), shift on per language."""

from __future__ import annotations

import contextlib

import pytest

from lingualift.errors import LingualiftError
from lingualift.evaluation import perplexity
from lingualift.evaluation.cloze import build_cloze, score_cloze
from lingualift.evaluation.heldout import HeldoutSet, score_heldout
from lingualift.testing import tiny_causal_lm

from .test_cloze import _verses


class RecordingShifCon:
    """Stands in for a ShifCon: records which languages were shifted while scoring."""

    def __init__(self) -> None:
        self.calls: list[object] = []

    def apply(self, model, langs):
        self.calls.append(langs)
        return contextlib.nullcontext()


def _heldout() -> HeldoutSet:
    sw = _verses(12)
    return HeldoutSet(
        texts={"sw": [r.text for r in sw[:4]], "en": ["In the beginning was the word."] * 3},
        cloze={"sw": build_cloze("sw", n=5, seed=0, records=sw)},
    )


def test_scores_match_the_underlying_scorers():
    model, tokenizer = tiny_causal_lm("llama")
    heldout = _heldout()
    scores = score_heldout(model, tokenizer, heldout, batch_size=4, letters=True)
    assert set(scores) == {"sw", "en"}
    for lang, texts in heldout.texts.items():
        expected = perplexity(model, tokenizer, texts, batch_size=4)
        assert scores[lang]["nll"] == pytest.approx(expected.nll, rel=1e-5)
        assert scores[lang]["n_tokens"] == expected.n_tokens
    cloze = score_cloze(model, tokenizer, heldout.cloze["sw"], 4, progress=False)
    assert scores["sw"]["cloze_acc_norm"] == cloze.acc_norm and scores["sw"]["cloze_n"] == 5
    assert 0 <= scores["sw"]["cloze_letter_acc"] <= 1
    assert "cloze_acc" not in scores["en"]
    assert set(heldout.only("sw").texts) == {"sw"}


def test_shift_is_on_for_each_language_scored():
    model, tokenizer = tiny_causal_lm("llama")
    shifcon = RecordingShifCon()
    score_heldout(model, tokenizer, _heldout(), shifcon, batch_size=4)
    assert shifcon.calls[:2] == ["sw", "en"] and "sw" in shifcon.calls[2:]


def test_cloze_without_texts_is_refused():
    model, tokenizer = tiny_causal_lm("llama")
    heldout = _heldout()
    with pytest.raises(LingualiftError, match="no held-out texts"):
        score_heldout(model, tokenizer, HeldoutSet({"en": ["x y"]}, heldout.cloze))
