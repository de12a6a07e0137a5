"""Preview: the whole greeting as one WAV file a person can listen to."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from ari_controller.prompts.audio import Pcm, read_wav, rms
from ari_controller.prompts.catalogue import menu_sentences
from ari_controller.prompts.preview import PAUSE_SECONDS, preview
from ari_controller.prompts.tts import EspeakNgEngine, SpeechError

AUDIO = Path(__file__).parent / "data" / "audio"


async def test_preview_is_one_wav_as_long_as_its_sentences_and_pauses(tmp_path: Path) -> None:
    engine = EspeakNgEngine()
    sentences = menu_sentences(
        "Acme Operations", None, [("1", "die Datenbank"), ("2", "das Netzwerk")], "de"
    )
    out = tmp_path / "preview" / "greeting.wav"
    duration = await preview(sentences, "de", out, engine)

    with wave.open(str(out), "rb") as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (8000, 1, 2)
    written = read_wav(out)
    assert written.duration == pytest.approx(duration, abs=0.001)
    parts = sum(Pcm(*engine.synthesize(text, "de")).duration for text in sentences)
    pauses = PAUSE_SECONDS * (len(sentences) - 1)
    assert duration == pytest.approx(parts + pauses, abs=0.05)
    assert rms(written) > 300


async def test_preview_plays_a_custom_greeting_file_then_the_menu(tmp_path: Path) -> None:
    out = tmp_path / "greeting.wav"
    duration = await preview(
        [AUDIO / "welcome.mp3", "For billing, press 1."], "en", out, EspeakNgEngine()
    )
    assert 1.68 + PAUSE_SECONDS + 1.0 < duration < 1.68 + PAUSE_SECONDS + 3.0


async def test_preview_writes_nothing_when_a_sentence_cannot_be_spoken(tmp_path: Path) -> None:
    out = tmp_path / "greeting.wav"
    with pytest.raises(SpeechError):
        await preview(["Hello."], "xx-YY", out, EspeakNgEngine())
    assert not out.exists()
