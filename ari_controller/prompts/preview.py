"""What a caller will hear, as one audio file a person can listen to before going live."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from ari_controller.prompts.audio import Pcm, concatenate, decode_file, write_wav
from ari_controller.prompts.library import GREETING_MAX_SECONDS
from ari_controller.prompts.tts import SYNTHESIS_TIMEOUT_SECONDS, SpeechEngine

__all__ = ["PAUSE_SECONDS", "preview"]

PAUSE_SECONDS = 0.4
"""Silence between sentences, about what a call has between two playbacks."""


async def preview(
    sentences: Sequence[str | Path],
    language: str,
    out: Path,
    engine: SpeechEngine,
    *,
    sample_rate: int = 8000,
    pause_seconds: float = PAUSE_SECONDS,
) -> float:
    """Write the sentences, in order with pauses between, as one mono 16-bit WAV at
    `sample_rate` (8 kHz: what a phone line carries). Return its duration in seconds.

    A `Path` among the sentences is a custom audio file (a recorded greeting) played as is.
    Raises SpeechError or AudioFileError; nothing is written then.
    """
    parts: list[Pcm] = []
    for sentence in sentences:
        if isinstance(sentence, Path):
            part = await asyncio.to_thread(
                decode_file, sentence, max_seconds=GREETING_MAX_SECONDS, sample_rate=sample_rate
            )
        else:
            samples, rate = await asyncio.wait_for(
                asyncio.to_thread(engine.synthesize, sentence, language),
                SYNTHESIS_TIMEOUT_SECONDS,
            )
            part = Pcm(samples, rate)
        parts.append(part)
    return await asyncio.to_thread(_write, parts, sample_rate, pause_seconds, out)


def _write(parts: Sequence[Pcm], sample_rate: int, pause_seconds: float, out: Path) -> float:
    whole = concatenate(parts, sample_rate, pause_seconds)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_wav(out, whole)
    return whole.duration


async def preview_wav(
    sentences: Sequence[str | Path], language: str, engine: SpeechEngine
) -> bytes:
    """The same preview as WAV bytes (for the console's player)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="callrouting-preview-") as tmp:
        out = Path(tmp) / "preview.wav"
        await preview(sentences, language, out, engine)
        return await asyncio.to_thread(out.read_bytes)
