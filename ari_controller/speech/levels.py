"""How loud the words of a recording are, and the recording with its quiet frames silenced:
the measures the menu's echo guard is built on (calls/listening.py). Pure: bytes in, bytes
or a number out."""

from __future__ import annotations

import array
import math

from ari_controller.prompts.audio import AudioFileError, Pcm, read_wav, wav_bytes

# Frames (20 ms at 8 kHz) quieter than this are pauses, not part of the level.
_VOICED_DBFS = -50.0
_FRAME = 160


def speech_level_dbfs(audio: bytes) -> float | None:
    """The level of the voiced part of a recording (RMS of its frames above -50 dBFS), None
    for silence or a file that is not audio."""
    try:
        pcm = read_wav(audio)
    except (AudioFileError, ValueError, EOFError):
        return None
    samples = array.array("h")
    samples.frombytes(pcm.samples)
    floor = 32768.0 * 10 ** (_VOICED_DBFS / 20)
    energies = []
    for start in range(0, len(samples) - _FRAME + 1, _FRAME):
        energy = sum(x * x for x in samples[start : start + _FRAME]) / _FRAME
        if math.sqrt(energy) >= floor:
            energies.append(energy)
    if not energies:
        return None
    return 20 * math.log10(math.sqrt(sum(energies) / len(energies)) / 32768.0)


def gated(audio: bytes, floor_dbfs: float) -> bytes:
    """The recording with every 20 ms frame quieter than `floor_dbfs` silenced (a file that
    is not audio is returned as it is: the recognizer says what is wrong with it)."""
    try:
        pcm = read_wav(audio)
    except (AudioFileError, ValueError, EOFError):
        return audio
    samples = array.array("h")
    samples.frombytes(pcm.samples)
    floor = (32768.0 * 10 ** (floor_dbfs / 20)) ** 2
    silence = array.array("h", bytes(2 * _FRAME))
    for start in range(0, len(samples), _FRAME):
        frame = samples[start : start + _FRAME]
        if sum(x * x for x in frame) / max(1, len(frame)) < floor:
            samples[start : start + len(frame)] = silence[: len(frame)]
    return wav_bytes(Pcm(samples.tobytes(), pcm.sample_rate))
