"""Which language a request is for: the model it names, or language identification.

``model`` may name a served language (``sw``, or any spelling
:func:`~lingualift.languages.normalize_language` accepts, such as ``swa``), or
``auto`` / the base model's id, which identify the language of the prompt (for
chat, of the last user message). Model names are only ever looked up in the
set of served languages, never used to build a path. The engine then serves
the language with its current adapter, or with the base model when it has
none or when identification was unsure (``lang`` None).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from lingualift.errors import LingualiftError
from lingualift.langid import LanguageIdentifier
from lingualift.languages import normalize_language
from lingualift.serving.protocol import ApiError

AUTO = "auto"
IDENTIFY_CHARS = 2000
"""Language identification reads at most this many characters (the start of the text): enough
to be sure, and a megabyte-long prompt does not hold up the event loop."""


@dataclasses.dataclass(frozen=True)
class LanguageChoice:
    """The language a request is served in, and how it was found."""

    lang: str | None
    """Canonical code; None when identification was unsure."""
    detected: bool
    """True when language identification chose it."""
    confidence: float | None
    """Identification probability (None when the model named the language)."""


def choose_language(
    model: str,
    text: str,
    *,
    served: Collection[str],
    auto_names: Collection[str],
    identifier: LanguageIdentifier,
) -> LanguageChoice:
    """The language of a request, or a 404 :class:`ApiError` for a model nobody serves."""
    if model in auto_names:
        found = identifier.identify(text[:IDENTIFY_CHARS])
        return LanguageChoice(found.lang, True, found.confidence)
    if model in served:
        return LanguageChoice(model, False, None)
    try:
        code: str | None = normalize_language(model)
    except LingualiftError:
        code = None
    if code in served:
        return LanguageChoice(code, False, None)
    have = ", ".join([*sorted(auto_names), *sorted(served)])
    raise ApiError(
        404,
        f"The model {model!r} does not exist on this server; use one of: {have}.",
        param="model",
        code="model_not_found",
    )
