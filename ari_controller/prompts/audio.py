"""What audio Asterisk can play: decoding, resampling, checking and writing mono 16-bit WAV.

Asterisk's `format_wav` plays `.wav` as 8 kHz and `.wav16` as 16 kHz signed-linear mono
16-bit; everything we hand it is converted to those two. Decoding (WAV in any common sample
format, MP3, FLAC, Ogg Vorbis) and resampling are done by miniaudio (C, with a low-pass filter).
"""

from __future__ import annotations

import io
import math
import os
import wave
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import miniaudio  # type: ignore[import-untyped]

__all__ = [
    "ASTERISK_RATES",
    "AudioFileError",
    "Pcm",
    "concatenate",
    "decode_file",
    "peak",
    "read_wav",
    "resample",
    "rms",
    "silence",
    "wav_bytes",
    "wav_duration",
    "write_wav",
]

ASTERISK_RATES = (8000, 16000)
"""The rates we write: `<name>.wav` at 8 kHz, `<name>.wav16` at 16 kHz."""


# Below this peak (about -60 dBFS) a file is silence, not something a caller can hear.
_SILENCE_PEAK = 32


class AudioFileError(ValueError):
    """An audio file cannot be used: unreadable, not audio, empty, or too long."""


@dataclass(frozen=True)
class Pcm:
    """Mono signed 16-bit little-endian samples at `sample_rate`."""

    samples: bytes
    sample_rate: int

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, not {self.sample_rate}")
        if len(self.samples) % 2:
            raise ValueError("16-bit PCM must have an even number of bytes")

    @property
    def frames(self) -> int:
        return len(self.samples) // 2

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def resample(pcm: Pcm, sample_rate: int) -> Pcm:
    if pcm.sample_rate == sample_rate or not pcm.samples:
        return Pcm(pcm.samples, sample_rate)
    converted = miniaudio.convert_frames(
        miniaudio.SampleFormat.SIGNED16,
        1,
        pcm.sample_rate,
        pcm.samples,
        miniaudio.SampleFormat.SIGNED16,
        1,
        sample_rate,
    )
    return Pcm(bytes(converted), sample_rate)


def silence(seconds: float, sample_rate: int) -> Pcm:
    return Pcm(bytes(2 * round(seconds * sample_rate)), sample_rate)


def concatenate(parts: Sequence[Pcm], sample_rate: int, pause_seconds: float = 0.0) -> Pcm:
    """Join parts at one rate, with `pause_seconds` of silence between consecutive parts."""
    gap = silence(pause_seconds, sample_rate).samples
    chunks: list[bytes] = []
    for index, part in enumerate(parts):
        if index and gap:
            chunks.append(gap)
        chunks.append(resample(part, sample_rate).samples)
    return Pcm(b"".join(chunks), sample_rate)


def rms(pcm: Pcm) -> float:
    """Root mean square of the samples, full scale 32768: 0 is silence."""
    if not pcm.samples:
        return 0.0
    values = array("h")
    values.frombytes(pcm.samples)
    if values.itemsize != 2:  # pragma: no cover (no platform we run on)
        raise RuntimeError("array('h') is not 16-bit here")
    return math.sqrt(sum(v * v for v in values) / len(values))


def peak(pcm: Pcm) -> int:
    """The largest absolute sample value (0 to 32768)."""
    if not pcm.samples:
        return 0
    values = array("h")
    values.frombytes(pcm.samples)
    return max(max(values), -min(values))


def wav_bytes(pcm: Pcm) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(pcm.sample_rate)
        writer.writeframes(pcm.samples)
    return buffer.getvalue()


def write_wav(path: Path, pcm: Pcm) -> None:
    """Write atomically: Asterisk (or a concurrent reader) never sees a half-written file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(wav_bytes(pcm))
    os.replace(temporary, path)


def read_wav(source: Path | bytes) -> Pcm:
    """Read a mono 16-bit PCM WAV (what we write); other WAVs go through decode_file."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")
    try:
        with wave.open(stream, "rb") as reader:
            if reader.getnchannels() != 1 or reader.getsampwidth() != 2:
                raise AudioFileError(
                    f"expected mono 16-bit WAV, got {reader.getnchannels()} channel(s) of "
                    f"{8 * reader.getsampwidth()} bits"
                )
            return Pcm(reader.readframes(reader.getnframes()), reader.getframerate())
    except (wave.Error, EOFError) as error:
        raise AudioFileError(f"not a readable WAV file: {error}") from error
    finally:
        stream.close()


def wav_duration(path: Path) -> float:
    """Duration from the header alone (cheap: used when a cached prompt is found again)."""
    try:
        with wave.open(str(path), "rb") as reader:
            return reader.getnframes() / reader.getframerate()
    except (wave.Error, EOFError) as error:
        raise AudioFileError(f"{path}: not a readable WAV file: {error}") from error


def decode_file(path: Path, *, max_seconds: float, sample_rate: int = 16000) -> Pcm:
    """Decode a WAV/MP3/FLAC/Ogg file to mono PCM at `sample_rate`, checking its length.

    Raises AudioFileError naming the file and what is wrong with it.
    """
    try:
        info = miniaudio.get_file_info(str(path))
    except FileNotFoundError as error:
        raise AudioFileError(f"{path}: file does not exist") from error
    except OSError as error:
        raise AudioFileError(f"{path}: cannot be read: {error}") from error
    except miniaudio.DecodeError as error:
        raise AudioFileError(
            f"{path}: not an audio file we can read (WAV, MP3, FLAC or Ogg Vorbis)"
        ) from error
    if info.sample_rate <= 0 or info.num_frames <= 0:
        raise AudioFileError(f"{path}: the file holds no audio")
    seconds = info.num_frames / info.sample_rate
    if seconds > max_seconds:
        raise AudioFileError(
            f"{path}: {seconds:.0f} s long, longer than the {max_seconds:.0f} s allowed"
        )
    try:
        decoded = miniaudio.decode_file(
            str(path),
            output_format=miniaudio.SampleFormat.SIGNED16,
            nchannels=1,
            sample_rate=sample_rate,
        )
    except miniaudio.DecodeError as error:
        raise AudioFileError(f"{path}: the audio is damaged and cannot be decoded") from error
    pcm = Pcm(decoded.samples.tobytes(), sample_rate)
    if pcm.frames == 0:
        raise AudioFileError(f"{path}: the file holds no audio")
    if peak(pcm) < _SILENCE_PEAK:
        raise AudioFileError(f"{path}: the file is silent")
    return pcm
