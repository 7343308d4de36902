"""Language codes: one normal form everywhere (ISO 639-1 where it exists, else 639-3).

Users write ``sw``, ``swa``, ``swh``, ``Swahili`` or ``sw-KE``; all of them mean
the same adapter, the same corpus slice and the same typology row.
"""

from __future__ import annotations

import functools

import langcodes

from lingualift.errors import LingualiftError

DOMINANT_LANGUAGE = "en"

# CLDR folds Tagalog into Filipino (tl -> fil); we keep the ISO 639-1 code, which
# is what the embedded corpus and most datasets use.
_PREFERRED = {"fil": "tl"}


@functools.cache
def normalize_language(code: str) -> str:
    """Return the canonical code of ``code`` or raise a clear error.

    >>> normalize_language("swa"), normalize_language("Swahili"), normalize_language("pt-BR")
    ('sw', 'sw', 'pt')
    """
    raw = (code or "").strip()
    if not raw:
        raise LingualiftError("Empty language code; give an ISO 639 code such as 'sw' or 'swa'.")
    language = None
    if langcodes.tag_is_valid(raw.replace("_", "-")):
        language = langcodes.Language.get(raw.replace("_", "-"), normalize=True).language
    if language is None or language == "und" or not _is_known(language):
        try:
            language = langcodes.find(raw).language
        except LookupError:
            language = None
    if language is None or not _is_known(language):
        raise LingualiftError(
            f"Unknown language {code!r}; use an ISO 639-1/639-3 code or an English "
            "language name, e.g. 'sw', 'swa' or 'Swahili'."
        )
    # Macrolanguage members (swh -> sw, cmn -> zh) collapse onto the macrolanguage.
    canonical = langcodes.standardize_tag(language, macro=True).split("-")[0]
    return _PREFERRED.get(canonical, canonical)


def _is_known(language: str) -> bool:
    """A registered language subtag, not one of the private-use codes qaa-qtz."""
    private_use = len(language) == 3 and "qaa" <= language <= "qtz"
    return langcodes.Language.get(language).is_valid() and not private_use


def language_name(code: str) -> str:
    """English name of a language code, e.g. ``sw`` -> ``Swahili``."""
    return langcodes.Language.get(normalize_language(code), normalize=False).display_name("en")


def to_iso639_3(code: str) -> str:
    """The ISO 639-3 code (what URIEL/lang2vec uses), e.g. ``sw`` -> ``swa``."""
    return langcodes.Language.get(normalize_language(code), normalize=False).to_alpha3()
