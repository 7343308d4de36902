from lingualift.langid import LanguageIdentifier


def test_identifies_with_confidence_and_says_when_unsure():
    identifier = LanguageIdentifier(min_confidence=0.5)
    swahili = identifier.identify("Habari ya asubuhi, rafiki yangu. Unaendeleaje leo?")
    assert swahili.lang == "sw" and swahili.confidence > 0.5
    assert (
        identifier.identify("Bonjour tout le monde, comment allez-vous aujourd'hui ?").lang == "fr"
    )
    unsure = LanguageIdentifier(min_confidence=0.999).identify("ok")
    assert unsure.lang is None and unsure.best_guess is not None
    assert identifier.identify("   ").lang is None
