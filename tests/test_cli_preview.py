"""`ari-controller preview`: the greeting of each example number, as text and as one WAV file."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from ari_controller.cli import main
from ari_controller.prompts.audio import read_wav, rms

EXAMPLE = str(Path(__file__).resolve().parent.parent / "config.example.yaml")


@pytest.mark.parametrize(
    ("did", "first_line", "at_least_s"),
    [
        ("+4930123456", "You have reached Acme Operations.", 6.0),
        ("+4940555000", "Willkommen bei der Acme Hotline.", 1.0),
    ],
)
def test_preview_writes_the_whole_greeting(
    did: str,
    first_line: str,
    at_least_s: float,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "greeting.wav"
    assert main(["preview", "--config", EXAMPLE, "--number", did, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == first_line
    with wave.open(str(out)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        seconds = wav.getnframes() / wav.getframerate()
    assert at_least_s < seconds < 30
    assert printed[-1] == f"wrote {out} ({seconds:.1f} s)"
    assert rms(read_wav(out)) > 300  # speech, not silence


def test_preview_of_an_unknown_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.wav"
    assert main(["preview", "--config", EXAMPLE, "--number", "42", "--out", str(out)]) == 2
    assert "no number with did '42'" in capsys.readouterr().err
    assert not out.exists()
