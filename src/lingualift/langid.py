"""Language identification: one identifier, with a confidence threshold, for every caller.

Routing a request to its adapter, applying ShifCon to a prompt and splitting a
traffic log by language all ask the same question, so they share one answer:
py3langid (a naive Bayes model over 97 languages, shipped inside the wheel, so
it works offline) with probabilities normalised over its languages. Below
``min_confidence`` the answer is "unsure" (``None``): callers then fall back to
the base model or ask for the language, rather than guess.
"""

from __future__ import annotations

import dataclasses
import functools

from lingualift.errors import LingualiftError
from lingualift.languages import normalize_language

DEFAULT_MIN_CONFIDENCE = 0.5


@dataclasses.dataclass(frozen=True)
class Identification:
    """What the identifier says about one text."""

    lang: str | None
    """Canonical language code, or None when the identifier is unsure."""
    confidence: float
    """Probability of the best language (normalised over the identifier's languages)."""
    best_guess: str | None
    """The best language even when below the threshold (None if it has no canonical code)."""


class LanguageIdentifier:
    """py3langid with codes normalised to lingualift's and a confidence threshold."""

    def __init__(self, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise LingualiftError(f"min_confidence must be in [0, 1], got {min_confidence}.")
        self.min_confidence = min_confidence

    def identify(self, text: str) -> Identification:
        """The language of ``text``, or ``lang=None`` below the confidence threshold."""
        code, prob = _model().classify(text or "")
        try:
            guess: str | None = normalize_language(code)
        except LingualiftError:
            guess = None
        sure = guess is not None and prob >= self.min_confidence and bool((text or "").strip())
        return Identification(guess if sure else None, float(prob), guess)

    def identify_many(self, texts: list[str]) -> list[Identification]:
        return [self.identify(text) for text in texts]


@functools.cache
def _model():
    from py3langid.langid import MODEL_FILE
    from py3langid.langid import LanguageIdentifier as _Py3LangId

    return _Py3LangId.from_model_file(MODEL_FILE, norm_probs=True)


@functools.cache
def default_identifier() -> LanguageIdentifier:
    """The shared identifier at the default threshold."""
    return LanguageIdentifier()
