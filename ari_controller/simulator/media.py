"""Media the simulated calls carry: sounds to play, what a phone says, recordings kept.

- `SoundLibrary` resolves a media URI (`sound:`, `recording:`, `tone:`, `digits:`,
  `http(s)://`) to audio, or to nothing when Asterisk would fail the playback.
- `VoiceTimeline` is what a phone has said into a call, in call time: recordings copy
  from it, talk detection and silence counting read it.
- `RecordingStore` holds stored recordings as real WAV files.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from ari_controller.simulator.audio import (
    FRAME_SECONDS,
    RATE,
    Audio,
    concatenate,
    decode_wav,
    read_wav,
    tone,
    voiced_frames,
    write_wav,
)

BUILTIN_SOUNDS = Path(__file__).parent / "sounds"
HTTP_FETCH_TIMEOUT = 5.0
# Tones play until stopped in Asterisk; a playback here needs an end.
TONE_SECONDS = 30.0
DIGIT_SECONDS = 0.5
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-/]+$")


class SoundLibrary:
    """Sound directories, searched `<dir>/<lang>/NAME.wav` then `<dir>/NAME.wav`; the
    built-in directory comes last so a user's files win."""

    def __init__(self, directories: list[Path], recordings: RecordingStore) -> None:
        self.directories = [*directories, BUILTIN_SOUNDS]
        self.recordings = recordings
        self._cache: dict[tuple[str, str], Audio] = {}

    def find_sound(self, name: str, language: str = "en") -> Path | None:
        if not SAFE_NAME.match(name) or ".." in name:
            return None
        for directory in self.directories:
            for candidate in (directory / language / f"{name}.wav", directory / f"{name}.wav"):
                if candidate.is_file():
                    return candidate
        return None

    def sound(self, name: str, language: str = "en") -> Audio | None:
        key = (name, language)
        if key not in self._cache:
            path = self.find_sound(name, language)
            if path is None:
                return None
            self._cache[key] = read_wav(path)
        return self._cache[key]

    async def resolve(self, media_uri: str, language: str = "en") -> Audio | None:
        """The audio a media URI plays, or None when Asterisk would fail the playback."""
        scheme, _, rest = media_uri.partition(":")
        if scheme == "sound":
            return self.sound(rest, language)
        if scheme == "recording":
            path = self.recordings.path(rest)
            return read_wav(path) if path is not None else None
        if scheme == "tone":
            return tone(425.0, TONE_SECONDS, amplitude=4000)
        if scheme in ("digits", "number"):
            count = len([c for c in rest if c.isalnum() or c in "*#"])
            return tone(697.0, DIGIT_SECONDS * max(1, count), amplitude=4000)
        if scheme in ("http", "https"):
            return await fetch_wav(media_uri)
        return None


async def fetch_wav(url: str) -> Audio | None:
    """Asterisk's HTTP media cache: fetch the file, play it; any failure fails the playback."""
    try:
        timeout = aiohttp.ClientTimeout(total=HTTP_FETCH_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as reply:
            if reply.status != 200:
                return None
            return decode_wav(await reply.read())
    except (aiohttp.ClientError, TimeoutError, ValueError, EOFError):
        return None
    except asyncio.CancelledError:
        raise


@dataclass
class Utterance:
    start: float
    audio: Audio
    voiced: list[bool]
    cut_at: float | None = None

    @property
    def end(self) -> float:
        natural = self.start + self.audio.duration
        return natural if self.cut_at is None else min(natural, self.cut_at)


@dataclass
class VoiceTimeline:
    """What the phone has said into the call, by call time."""

    utterances: list[Utterance] = field(default_factory=list)

    def say(self, start: float, audio: Audio) -> Utterance:
        utterance = Utterance(start, audio, voiced_frames(audio))
        self.utterances.append(utterance)
        return utterance

    def voiced_at(self, moment: float) -> bool:
        for utterance in self.utterances:
            if utterance.start <= moment < utterance.end:
                index = int((moment - utterance.start) / FRAME_SECONDS)
                if index < len(utterance.voiced) and utterance.voiced[index]:
                    return True
        return False

    def speaking_at(self, moment: float) -> bool:
        """Is an utterance still going on (even a pause within it)?"""
        return any(u.start <= moment < u.end for u in self.utterances)

    def audio_between(self, start: float, end: float) -> Audio:
        """The audio of [start, end): speech where the phone spoke (mixed where utterances
        overlap), silence elsewhere."""
        total = max(0, int((end - start) * RATE))
        out = Audio.silence(total / RATE).samples
        for utterance in self.utterances:
            lo = max(start, utterance.start)
            hi = min(end, utterance.end)
            if hi <= lo:
                continue
            source_from = int((lo - utterance.start) * RATE)
            target_from = int((lo - start) * RATE)
            count = min(int((hi - lo) * RATE), total - target_from)
            # Voices at once (the phone's and a line echo) add up, as on a line.
            source = utterance.audio.samples
            for offset in range(count):
                mixed = out[target_from + offset] + source[source_from + offset]
                out[target_from + offset] = max(-32768, min(32767, mixed))
        return Audio(out)


class RecordingStore:
    """Stored recordings: `<directory>/<name>.<format>`, real WAV files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path | None:
        if not SAFE_NAME.match(name) or ".." in name:
            return None
        candidate = self.directory / f"{name}.wav"
        return candidate if candidate.is_file() else None

    def exists(self, name: str) -> bool:
        return self.path(name) is not None

    def names(self) -> list[str]:
        return sorted(
            str(p.relative_to(self.directory).with_suffix(""))
            for p in self.directory.rglob("*.wav")
        )

    def save(self, name: str, audio: Audio, append: bool) -> Path:
        target = self.directory / f"{name}.wav"
        if append and target.is_file():
            audio = concatenate([read_wav(target), audio])
        write_wav(target, audio)
        return target

    def delete(self, name: str) -> bool:
        path = self.path(name)
        if path is None:
            return False
        path.unlink()
        return True
