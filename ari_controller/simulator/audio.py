"""Audio as the simulated phone network carries it: 8 kHz mono 16-bit PCM.

Reading and writing WAV files, their durations, and where speech is (frame energy),
which drives talk detection and the silence counting of recordings.
"""

from __future__ import annotations

import array
import io
import math
import wave
from dataclasses import dataclass
from pathlib import Path

RATE = 8000
FRAME_SECONDS = 0.02
FRAME_SAMPLES = int(RATE * FRAME_SECONDS)
# Mean absolute amplitude below which a 20 ms frame counts as silence (Asterisk's DSP
# default silence threshold is 256 on the same scale).
SILENCE_THRESHOLD = 256


@dataclass(frozen=True)
class Audio:
    """Decoded audio at 8 kHz mono 16-bit."""

    samples: array.array[int]

    @property
    def duration(self) -> float:
        return len(self.samples) / RATE

    @staticmethod
    def silence(seconds: float) -> Audio:
        return Audio(array.array("h", bytes(2 * int(seconds * RATE))))


def decode_wav(data: bytes) -> Audio:
    """Decode a WAV file to 8 kHz mono 16-bit (downmixing and resampling if needed)."""
    with wave.open(io.BytesIO(data), "rb") as reader:
        channels = reader.getnchannels()
        width = reader.getsampwidth()
        rate = reader.getframerate()
        raw = reader.readframes(reader.getnframes())
    if width == 1:
        pcm = array.array("h", ((b - 128) << 8 for b in raw))
    elif width == 2:
        pcm = array.array("h")
        pcm.frombytes(raw)
    else:
        raise ValueError(f"unsupported sample width {width}")
    if channels > 1:
        pcm = array.array("h", pcm[::channels])
    if rate != RATE:
        step = rate / RATE
        count = int(len(pcm) / step)
        pcm = array.array("h", (pcm[int(i * step)] for i in range(count)))
    return Audio(pcm)


def read_wav(path: Path) -> Audio:
    return decode_wav(path.read_bytes())


def encode_wav(audio: Audio) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes(audio.samples.tobytes())
    return buffer.getvalue()


def write_wav(path: Path, audio: Audio) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_wav(audio))


def wav_duration(data: bytes) -> float:
    with wave.open(io.BytesIO(data), "rb") as reader:
        return reader.getnframes() / reader.getframerate()


def voiced_frames(audio: Audio) -> list[bool]:
    """For each 20 ms frame: does it carry speech (energy above the silence threshold)?"""
    flags = []
    samples = audio.samples
    for start in range(0, len(samples), FRAME_SAMPLES):
        frame = samples[start : start + FRAME_SAMPLES]
        level = sum(abs(s) for s in frame) / max(1, len(frame))
        flags.append(level >= SILENCE_THRESHOLD)
    return flags


def speech_spans(audio: Audio, min_gap: float) -> list[tuple[float, float]]:
    """Spans (start, end) in seconds where there is speech; gaps shorter than `min_gap`
    are bridged, as a talk detector with that silence threshold would."""
    spans: list[tuple[float, float]] = []
    for index, voiced in enumerate(voiced_frames(audio)):
        if not voiced:
            continue
        start = index * FRAME_SECONDS
        end = start + FRAME_SECONDS
        if spans and start - spans[-1][1] < min_gap:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def tone(frequency: float, seconds: float, amplitude: int = 8000) -> Audio:
    count = int(seconds * RATE)
    return Audio(
        array.array(
            "h",
            (int(amplitude * math.sin(2 * math.pi * frequency * i / RATE)) for i in range(count)),
        )
    )


def concatenate(parts: list[Audio]) -> Audio:
    out = array.array("h")
    for part in parts:
        out.extend(part.samples)
    return Audio(out)


def attenuated(audio: Audio, db: float) -> Audio:
    """The audio `db` decibels quieter (a line echo of a prompt, say -25)."""
    gain = 10 ** (-abs(db) / 20)
    return Audio(array.array("h", (int(s * gain) for s in audio.samples)))
