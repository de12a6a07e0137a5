"""The sentence catalogue: every key in every language, and the errors check-config reports."""

from __future__ import annotations

import pytest

from ari_controller.prompts.catalogue import (
    CATALOGUE,
    KEYS,
    CatalogueError,
    check_catalogue,
    menu_options,
    menu_sentences,
    placeholders,
    render,
    responder_hint,
    spoken_key,
)

LANGUAGES = ("en", "de", "fr", "es")
SAMPLE_PARAMS = {
    "number_name": "Acme Operations",
    "label": "the database team",
    "digit": "3",
    "accept_key": "1",
    "decline_key": "2",
    "what": "a voicemail",
    "caller": "4 9 1 7",
    "route": "the night shift",
}

REQUIRED_KEYS = {
    "greeting_intro",
    "menu_option",
    "menu_option_voice",
    "menu_repeat_hint",
    "invalid_choice",
    "no_choice",
    "please_hold",
    "connecting",
    "outside_hours",
    "no_one_available",
    "voicemail_prompt",
    "voicemail_saved",
    "goodbye",
    "unknown_number",
    "technical_problem",
    "responder_intro",
    "responder_accept_hint",
    "responder_accept_hint_voice",
    "responder_accept_decline_hint",
    "call_taken",
    "connecting_responder",
}


def test_the_catalogue_has_every_sentence_the_call_flow_needs() -> None:
    assert REQUIRED_KEYS <= set(KEYS)
    assert set(CATALOGUE) >= set(LANGUAGES)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_key_renders_in_every_language_with_its_parameters(language: str) -> None:
    for key in KEYS:
        text = render(key, language, **SAMPLE_PARAMS)
        assert text.strip(), key
        assert "{" not in text and "}" not in text, (key, text)
        for name in placeholders(CATALOGUE["en"][key]):
            assert str(SAMPLE_PARAMS[name]) in text, (key, language, text)


def test_translations_are_not_left_in_english() -> None:
    for language in ("de", "fr", "es"):
        same = [key for key in KEYS if CATALOGUE[language][key] == CATALOGUE["en"][key]]
        assert same == [], (language, same)


def test_the_shipped_catalogue_has_no_problems() -> None:
    assert check_catalogue(LANGUAGES) == []
    assert check_catalogue(["de-DE", "en_GB", "es-419", "fr-CA"]) == []


def test_check_catalogue_reports_a_missing_translation_and_a_missing_parameter() -> None:
    broken = {
        "en": dict(CATALOGUE["en"]),
        "de": {k: v for k, v in CATALOGUE["de"].items() if k != "goodbye"},
        "fr": {**CATALOGUE["fr"], "greeting_intro": "Bonjour."},
        "es": {**CATALOGUE["es"], "menu_option": "Para {etiqueta}, pulse {digit}."},
    }
    problems = check_catalogue(["en", "de", "fr", "es", "it"], broken)
    assert "de: sentence 'goodbye' has no translation" in problems
    assert "fr: sentence 'greeting_intro' lacks {number_name}" in problems
    assert "es: sentence 'menu_option' lacks {label}" in problems
    assert "es: sentence 'menu_option' has unknown {etiqueta}" in problems
    assert any("'it'" in problem for problem in problems)
    assert len(problems) == 5


def test_render_refuses_rather_than_playing_silence() -> None:
    with pytest.raises(CatalogueError, match="number_name"):
        render("greeting_intro", "en")
    with pytest.raises(CatalogueError, match="no sentences in language 'xx'"):
        render("goodbye", "xx")
    with pytest.raises(CatalogueError, match="missing"):
        render("no_such_sentence", "en")


def test_language_tags_fall_back_to_their_primary_language() -> None:
    assert render("goodbye", "de-AT") == "Auf Wiederhören."
    assert render("goodbye", "EN_us") == "Goodbye."


def test_menu_lists_every_route_in_order_then_the_repeat_hint() -> None:
    routes = [("1", "the database team"), ("2", "networking")]
    assert menu_sentences("Acme Operations", None, routes, "en") == [
        "You have reached Acme Operations.",
        "For the database team, press 1.",
        "For networking, press 2.",
        "To hear these options again, press star.",
    ]
    voice = menu_sentences("Acme", None, routes, "en", voice=True)
    assert voice[1] == "For the database team, press 1 or say the database team."


def test_custom_greeting_replaces_the_intro_and_only_greeting_drops_the_menu() -> None:
    routes = [("1", "Datenbank"), ("2", "Netzwerk")]
    custom = "Willkommen beim Bereitschaftsdienst von Acme."
    with_menu = menu_sentences("Acme", custom, routes, "de")
    assert with_menu[0] == custom
    assert with_menu[1] == "Für Datenbank drücken Sie 1."
    assert len(with_menu) == 4
    assert menu_sentences("Acme", custom, routes, "de", only_greeting=True) == [custom]


def test_a_single_route_has_no_menu() -> None:
    assert menu_sentences("Acme", None, [("1", "ops")], "fr") == ["Vous êtes en ligne avec Acme."]
    assert menu_options([("1", "ops")], "fr") == []


def test_menu_options_follow_a_greeting_file() -> None:
    routes = [("1", "database"), ("2", "network")]
    options = menu_options(routes, "en", voice=True)
    assert options == menu_sentences("Acme", None, routes, "en", voice=True)[1:]


def test_star_and_hash_are_spoken_as_words() -> None:
    assert spoken_key("*", "en") == "star"
    assert spoken_key("#", "de") == "Raute"
    assert spoken_key("7", "es") == "7"
    menu = menu_sentences("Acme", None, [("1", "ops"), ("#", "billing")], "es")
    assert menu[2] == "Para billing, pulse almohadilla."


def test_responder_hint_depends_on_decline_key_and_voice() -> None:
    assert responder_hint("en") == "Press any key to connect."
    assert responder_hint("en", voice=True) == "Press any key or say continue to connect."
    assert (
        responder_hint("en", accept_key="1", decline_key="*")
        == "Press 1 to connect, or star to decline."
    )


def test_every_sentence_a_number_can_say_is_prepared() -> None:
    """What announcements renders at start-up covers every sentence the call flow asks for."""
    from ari_controller.announcements import sentences_of
    from ari_controller.numbers import Number

    number = Number.model_validate(
        {
            "did": "1",
            "name": "Acme",
            "language": "es",
            "routes": [{"label": "base", "policy": "p"}, {"label": "red", "policy": "q"}],
            "outside_hours": {"action": "message", "message": "Cerrado."},
        }
    )
    prepared = set(sentences_of(number))
    plain = {render(key, "es") for key in KEYS if not placeholders(CATALOGUE["en"][key])}
    assert plain <= prepared
    assert {
        "Ha llamado a Acme.",
        "Le habla Acme. Hay una llamada en espera.",
        render("responder_accept_hint", "es"),
        "Cerrado.",
    } <= prepared


def test_responder_is_told_the_one_key_that_accepts() -> None:
    from ari_controller.prompts.catalogue import responder_hint

    assert responder_hint("en") == "Press any key to connect."
    assert responder_hint("en", accept_key="1") == "Press 1 to connect."
    assert responder_hint("en", accept_key="#", voice=True) == (
        "Press hash or say continue to connect."
    )
    assert responder_hint("de", accept_key="1") == "Drücken Sie 1, um verbunden zu werden."
