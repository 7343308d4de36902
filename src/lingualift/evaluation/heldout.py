"""Held-out scoring per language: NLL on texts and accuracy on a cloze set.

What the quickstart and the experiment runner measure for every system (base
model, adapter, ShifCon): the mean token NLL of held-out text in each language
and, where a cloze set is given, completion accuracy on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from lingualift.errors import require


@dataclasses.dataclass
class HeldoutSet:
    """Held-out texts (for NLL) and cloze rows (see :mod:`lingualift.evaluation.cloze`) per language."""

    texts: dict[str, list[str]]
    cloze: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def only(self, lang: str) -> HeldoutSet:
        """The part of the set in one language."""
        return HeldoutSet(
            {lang: self.texts[lang]}, {k: v for k, v in self.cloze.items() if k == lang}
        )


def score_heldout(
    model: Any,
    tokenizer: Any,
    heldout: HeldoutSet,
    shifcon: Any = None,
    batch_size: int = 8,
    max_length: int | None = None,
    letters: bool = False,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """``{lang: metrics}``: NLL (nats/token) and, for languages with cloze rows, accuracy.

    With ``shifcon`` the shift is on while each language is scored (how ShifCon is
    deployed; it leaves the dominant language alone). ``letters`` also asks the
    cloze questions Global-MMLU style (answer letter), which small models sit near
    chance on.
    """
    from lingualift.evaluation.cloze import cloze_items, score_cloze
    from lingualift.evaluation.loading import shifcon_apply
    from lingualift.evaluation.mcq import evaluate_mcq
    from lingualift.evaluation.perplexity import perplexity

    require(heldout.texts, "No held-out texts to score; give at least one language.")
    missing = sorted(set(heldout.cloze) - set(heldout.texts))
    require(not missing, f"Cloze rows for {missing} have no held-out texts; add them.")
    model.eval()
    apply = shifcon_apply(shifcon, model)
    out: dict[str, dict[str, Any]] = {}
    for lang, texts in heldout.texts.items():
        with apply(lang) if apply else contextlib.nullcontext():
            result = perplexity(
                model, tokenizer, texts, max_length=max_length, batch_size=batch_size,
                progress=progress,
            )  # fmt: skip
        out[lang] = {
            "nll": result.nll,
            "perplexity": result.perplexity,
            "n_tokens": result.n_tokens,
            "n_texts": result.n_texts,
            "per_text": [[round(total, 6), count] for total, count in result.per_text],
        }
    for lang, rows in heldout.cloze.items():
        score = score_cloze(model, tokenizer, rows, batch_size, apply, progress)
        out[lang].update(
            cloze_acc=score.acc,
            cloze_acc_norm=score.acc_norm,
            cloze_acc_norm_stderr=score.acc_norm_stderr,
            cloze_n=score.n,
            cloze_hits=score.hits_norm,
        )
        if letters:
            samples = evaluate_mcq(
                model, tokenizer, cloze_items(rows), batch_size=batch_size, apply=apply,
                progress=progress,
            )  # fmt: skip
            out[lang]["cloze_letter_acc"] = sum(s.correct for s in samples) / len(samples)
    return out
