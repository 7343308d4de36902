import pytest

from lingualift.data import CORPUS_LANGUAGES, ParallelCorpus, parse_books
from lingualift.errors import LingualiftError


@pytest.fixture(scope="module")
def corpus():
    return ParallelCorpus()


def test_has_the_22_documented_languages(corpus):
    assert len(CORPUS_LANGUAGES) == 22
    for lang in ("en", "sw", "bn", "tl", "zh"):
        assert corpus.monolingual(lang, "43", limit=3)


def test_verse_ids_align_across_languages(corpus):
    pairs = corpus.parallel("en", "swa", books="43")
    assert len(pairs) > 800
    en, sw = dict((p[0].id, p[0].text) for p in pairs), dict((p[1].id, p[1].text) for p in pairs)
    assert "loved the world" in en["43.3.16"]
    assert "aliupenda ulimwengu" in sw["43.3.16"]
    assert all(p[1].lang == "sw" for p in pairs)


def test_placeholder_verses_are_skipped(corpus):
    # The Bengali translation marks verses merged into a neighbour with '-'.
    bengali = corpus.monolingual("bn", "1")
    assert all(r.text.strip() != "-" for r in bengali)
    assert len(bengali) < len(corpus.monolingual("en", "1"))


def test_book_splits_are_disjoint(corpus):
    ot = {r.id for r in corpus.monolingual("sw", "ot")}
    nt = {r.id for r in corpus.monolingual("sw", "nt")}
    assert ot and nt and not ot & nt
    assert parse_books("40-43") == (40, 41, 42, 43)
    assert parse_books(["gospels", 44]) == (40, 41, 42, 43, 44)


def test_multilingual_ids_are_unique(corpus):
    records = corpus.multilingual(["en", "fr"], "57", per_language=10)
    assert len({r.id for r in records}) == 20
    assert records[0].meta["verse"] == records[0].id.split(":", 1)[1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.monolingual("yo"), "no 'yo' text"),
        (lambda c: c.monolingual("en", "70"), "between 1 and 66"),
        (lambda c: c.monolingual("en", "psalms"), "Unknown book selection"),
        (lambda c: c.monolingual("en", translation="h"), "not a 'en' translation"),
        (lambda c: c.monolingual("sw", "43", limit=-3), "limit must be .* at least 1, got -3"),
        (lambda c: c.parallel("en", "sw", "43", limit=0), "limit must be .* at least 1, got 0"),
        (lambda c: c.multilingual(["sw"], "43", per_language=-1), "per_language must be"),
    ],
)
def test_bad_requests(corpus, call, message):
    with pytest.raises(LingualiftError, match=message):
        call(corpus)
