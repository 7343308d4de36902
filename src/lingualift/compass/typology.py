"""Typological similarity between languages from URIEL (lang2vec).

lang2vec 1.1.2 has no distance function, so similarity here is the mean of
cosine similarities over five URIEL feature sets (syntax, phonology and
inventory in their kNN-imputed versions, which have no missing values, plus
language family and geography). Averaging per set keeps the 3,700-column
family tree from drowning out the 28 phonology features.

URIEL is keyed by ISO 639-3 codes and files some macrolanguages under one
member (Swahili as ``swh``, Arabic as ``arb``, Persian as ``pes``); the
mapping below goes through :func:`lingualift.languages.to_iso639_3`.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lingualift.atomic import atomic_path
from lingualift.errors import LingualiftError
from lingualift.languages import normalize_language, to_iso639_3

FEATURE_SETS = ("syntax_knn", "phonology_knn", "inventory_knn", "fam", "geo")

# Macrolanguage -> the individual language URIEL lists (its most widely spoken member).
_URIEL_MEMBER = {
    "swa": "swh", "ara": "arb", "fas": "pes", "msa": "zsm", "zho": "cmn", "est": "ekk",
    "lav": "lvs", "uzb": "uzn", "aze": "azj", "kur": "kmr", "mon": "khk", "nep": "npi",
    "ori": "ory", "pus": "pbu", "sqi": "als", "yid": "ydd", "orm": "gaz", "grn": "gug",
    "que": "quy", "kok": "knn", "mlg": "plt", "kau": "knc", "aka": "twi", "ful": "fuv",
}  # fmt: skip


@functools.cache
def _lang2vec():
    # lang2vec also installs a script bin/lang2vec.py; under a console script that
    # folder is sys.path[0] and the script would shadow the package.
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if not Path(p or ".", "lang2vec.py").is_file()]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lang2vec imports the deprecated pkg_resources
            import lang2vec.lang2vec as l2v
    except ImportError:
        raise LingualiftError(
            "Typological similarity needs lang2vec; pip install lang2vec==1.1.2 'setuptools<81'."
        ) from None
    finally:
        sys.path[:] = saved
    return l2v, frozenset(l2v.available_languages())


def uriel_code(lang: str) -> str:
    """The code URIEL files ``lang`` under, e.g. ``sw`` -> ``swh``, ``zh`` -> ``cmn``."""
    _, available = _lang2vec()
    code = to_iso639_3(lang)
    for candidate in (code, _URIEL_MEMBER.get(code)):
        if candidate and candidate in available:
            return candidate
    raise LingualiftError(
        f"URIEL (lang2vec) has no features for {normalize_language(lang)!r}; use "
        "language_prior='uniform' or leave that language out."
    )


_FEATURES: dict[str, tuple[np.ndarray, ...]] = {}


def _cache_file():
    from lingualift.paths import cache_dir

    return cache_dir("typology") / "uriel-features.npz"


def _load_features(codes: Sequence[str]) -> None:
    """Fill the in-process table for ``codes``: disk cache first, then lang2vec.

    lang2vec re-reads its feature files on every call (the family table takes
    about 10 s), so all missing languages are fetched in one call per feature
    set and kept in ``$LINGUALIFT_HOME/typology``.
    """
    missing = [c for c in dict.fromkeys(codes) if c not in _FEATURES]
    if not missing:
        return
    path = _cache_file()
    stored: dict[str, np.ndarray] = {}
    if path.is_file():
        with np.load(path) as data:
            stored = {k: data[k] for k in data.files}
    need = [c for c in missing if f"{c}/{FEATURE_SETS[0]}" not in stored]
    if need:
        l2v, _ = _lang2vec()
        for name in FEATURE_SETS:
            table = l2v.get_features(need, name)
            for code in need:
                values = table[code]
                stored[f"{code}/{name}"] = np.array(
                    [0.0 if v == "--" else float(v) for v in values], dtype=np.float32
                )
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.savez(handle, **stored)
    for code in missing:
        _FEATURES[code] = tuple(stored[f"{code}/{name}"] for name in FEATURE_SETS)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


@functools.cache
def typological_similarity(a: str, b: str) -> float:
    """Similarity in [0, 1] of two languages (1 for the same language)."""
    ca, cb = uriel_code(a), uriel_code(b)
    if ca == cb:
        return 1.0
    _load_features([ca, cb])
    pairs = zip(_FEATURES[ca], _FEATURES[cb], strict=True)
    return float(np.mean([_cosine(x, y) for x, y in pairs]))


def similarities(target: str, langs: Sequence[str]) -> dict[str, float]:
    """Similarity of each language in ``langs`` to ``target``."""
    _load_features([uriel_code(x) for x in (target, *langs)])
    return {lang: typological_similarity(target, lang) for lang in dict.fromkeys(langs)}
