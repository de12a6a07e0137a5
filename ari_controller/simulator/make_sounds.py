"""Generate the built-in sounds (run once; the WAV files are committed).

Durations come from the real traces (PlaybackStarted to PlaybackFinished):
beep 0.425 s, vm-intro 5.65 s, tt-monkeys about 16.2 s. The "speech" is a deterministic
buzz with a syllable-like envelope: loud enough for talk detection, never silent for long.
"""

from __future__ import annotations

import array
import math
from pathlib import Path

from ari_controller.simulator.audio import RATE, Audio, concatenate, tone, write_wav

SOUNDS_DIR = Path(__file__).parent / "sounds" / "en"


def speech(seconds: float, pitch: float) -> Audio:
    """Voice-like audio: a few harmonics under a 4 Hz syllable envelope."""
    count = int(seconds * RATE)
    samples = array.array("h")
    for i in range(count):
        t = i / RATE
        envelope = 0.55 + 0.45 * math.sin(2 * math.pi * 4.0 * t)
        value = sum(math.sin(2 * math.pi * pitch * k * t) / k for k in (1, 2, 3))
        samples.append(int(5000 * envelope * value))
    return Audio(samples)


SOUNDS: dict[str, Audio] = {
    "beep": tone(1000.0, 0.425),
    # Prompts start with a short lead-in of silence, as recorded prompts do: the trace's
    # talk detection fires about 0.6 s after the caller's Playback(vm-intro) begins.
    "vm-intro": concatenate([Audio.silence(0.45), speech(5.2, 140.0)]),
    "tt-monkeys": concatenate([Audio.silence(0.2), speech(16.0, 210.0)]),
    "vm-nobodyavail": concatenate([Audio.silence(0.2), speech(2.0, 150.0)]),
    "silence-1": Audio.silence(1.0),
}


def main() -> None:
    for name, audio in SOUNDS.items():
        write_wav(SOUNDS_DIR / f"{name}.wav", audio)
        print(f"{name}.wav {audio.duration:.3f} s")


if __name__ == "__main__":
    main()
