"""ShifCon's inputs from the embedded parallel corpus: sentences per language, parallel pairs.

:func:`corpus_texts` gives the sentences language vectors are computed on
(the dominant language always included); :func:`corpus_pairs` the
(language, English) verse pairs the contrastive training reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from lingualift.languages import DOMINANT_LANGUAGE, normalize_language
from lingualift.shifcon.trainer import Pair


def corpus_texts(
    langs: Sequence[str], books: str = "ot", per_language: int = 256
) -> dict[str, list[str]]:
    """The first ``per_language`` verses of ``books`` per language, the dominant one included."""
    from lingualift.data import ParallelCorpus

    corpus = ParallelCorpus()
    codes = list(dict.fromkeys([DOMINANT_LANGUAGE, *(normalize_language(x) for x in langs)]))
    return {c: [r.text for r in corpus.monolingual(c, books, limit=per_language)] for c in codes}


def corpus_pairs(
    langs: Sequence[str], books: str, per_language: int, dominant: str = DOMINANT_LANGUAGE
) -> list[Pair]:
    """ShifCon pairs from the embedded corpus: each language's verse and its dominant parallel."""
    from lingualift.data import ParallelCorpus

    corpus = ParallelCorpus()
    return [
        Pair(target.lang, target.text, source.text)
        for lang in langs
        for source, target in corpus.parallel(dominant, lang, books, limit=per_language)
    ]
