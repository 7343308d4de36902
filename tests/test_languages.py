import pytest

from lingualift.errors import LingualiftError
from lingualift.languages import language_name, normalize_language, to_iso639_3


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("sw", "sw"),
        ("swa", "sw"),
        ("swh", "sw"),
        ("Swahili", "sw"),
        ("SW", "sw"),
        ("pt-BR", "pt"),
        ("zh_Hans", "zh"),
        ("cmn", "zh"),
        ("ben", "bn"),
        ("tgl", "tl"),
        ("fil", "tl"),
        ("yor", "yo"),
        ("quy", "quy"),
    ],
)
def test_normalizes_iso_codes_and_names(raw, code):
    assert normalize_language(raw) == code


@pytest.mark.parametrize("raw", ["xx", "qqq", "Notalanguage", "", "  "])
def test_unknown_language_is_a_clear_error(raw):
    with pytest.raises(LingualiftError, match="language"):
        normalize_language(raw)


def test_alpha3_and_names():
    assert to_iso639_3("sw") == "swa"
    assert to_iso639_3("tl") == "tgl"
    assert language_name("bn") == "Bangla" or language_name("bn") == "Bengali"
