"""Which audio Asterisk plays for a sentence or a custom file, and where it finds it.

Everything is rendered before a call needs it (`prepare` at start-up and on config reload);
a call only asks for `media_uri`, which never synthesizes. Files are named by content hash,
so a second start renders nothing and a changed text or voice gets a new file.

Each prompt is written twice into `cache_dir`:

- `<hash>.wav`   mono 16-bit, 8 kHz  (Asterisk's `wav` format, slin)
- `<hash>.wav16` mono 16-bit, 16 kHz (Asterisk's `wav16` format, slin16)

Asterisk reaches them in one of two ways (`media_mode`):

- `"sound"`: `cache_dir` is `<Asterisk sounds dir>/<sound_prefix>` (for example
  `/var/lib/asterisk/sounds/callrouting`, a directory shared with the controller). URIs are
  `sound:callrouting/<hash>`; Asterisk picks `.wav16` or `.wav` by the channel's codec.
  An absolute `sound_prefix` (the directory as Asterisk sees it, e.g. `/srv/prompts`) gives
  `sound:/srv/prompts/<hash>`, which Asterisk also plays, without touching its sounds dir.
- `"http"`: the controller serves `cache_dir` at `/media/<hash>.wav` (see `media_routes`, mounted
  on the daemon's HTTP server) and URIs are `<http_base>/media/<hash>.wav`; Asterisk fetches and
  keeps them in its HTTP media cache (res_http_media_cache). URIs name the 8 kHz file, served as
  `audio/wav` (the MIME type of Asterisk's `wav` format); `/media/<hash>.wav16` is served too,
  as `application/octet-stream` so Asterisk reads the format from the extension.

Hold music is either an Asterisk MOH class (musiconhold.conf) or a file played in a loop: see
`HoldMusic` and `replay_hold_music`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiohttp import web

from ari_controller.prompts.audio import (
    ASTERISK_RATES,
    Pcm,
    decode_file,
    resample,
    wav_duration,
    write_wav,
)
from ari_controller.prompts.tts import SYNTHESIS_TIMEOUT_SECONDS, SpeechEngine, SpeechError

__all__ = [
    "GREETING_MAX_SECONDS",
    "HOLD_MUSIC_MAX_SECONDS",
    "HoldMusic",
    "LoopingFile",
    "MediaMode",
    "MohClass",
    "PromptError",
    "PromptLibrary",
    "hold_music_source",
    "media_routes",
    "prepare_hold_music",
    "replay_hold_music",
]

MediaMode = Literal["sound", "http"]

GREETING_MAX_SECONDS = 300.0
HOLD_MUSIC_MAX_SECONDS = 1800.0
# Decoding a long MP3 takes well under this; longer means a stuck disk or decoder.
DECODE_TIMEOUT_SECONDS = 120.0

_FILE_NAME = re.compile(r"^(?P<key>[0-9a-f]{64})\.(?P<ext>wav|wav16)$")
_AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".ogg", ".oga"}


class PromptError(RuntimeError):
    """A prompt is not available: synthesis failed, or a URI was asked for an unprepared one."""


@dataclass(frozen=True)
class _Prepared:
    key: str
    duration: float
    text: str = ""


class PromptLibrary:
    """Rendered prompts and custom audio, by content hash, with the URI Asterisk plays."""

    def __init__(
        self,
        cache_dir: Path,
        engine: SpeechEngine,
        *,
        media_mode: MediaMode = "sound",
        sound_prefix: str = "callrouting",
        http_base: str | None = None,
    ) -> None:
        if media_mode not in ("sound", "http"):
            raise ValueError(f"media_mode must be 'sound' or 'http', not {media_mode!r}")
        if media_mode == "http" and not http_base:
            raise ValueError("media_mode 'http' needs http_base, e.g. http://10.0.0.5:8080")
        if media_mode == "sound" and not re.fullmatch(r"[A-Za-z0-9_\-./]+", sound_prefix):
            raise ValueError(f"sound_prefix {sound_prefix!r} must be a plain directory path")
        self.cache_dir = cache_dir
        self.engine = engine
        self.media_mode: MediaMode = media_mode
        self.sound_prefix = sound_prefix.rstrip("/")
        self.http_base = http_base.rstrip("/") if http_base else None
        self.rendered = 0
        """How many prompts were synthesized (not found in the cache) since start."""
        self._by_key: dict[str, _Prepared] = {}
        self._voice: str | None = None

    # --- sentences -----------------------------------------------------------------------

    def prompt_key(self, text: str, language: str) -> str:
        if self._voice is None:
            self._voice = self.engine.voice
        identity = "\x1f".join(
            (self.engine.name, self._voice, language.strip().lower(), text.strip())
        )
        return hashlib.sha256(identity.encode("utf-8")).hexdigest()

    async def prepare(self, items: Iterable[tuple[str, str]]) -> int:
        """Render every `(text, language)` not already in the cache; return how many were.

        Synthesis runs in a thread, one prompt at a time. Raises PromptError listing every
        sentence that failed, after rendering all the others.
        """
        # Disk and engine work stay off the event loop: a reload happens while calls run.
        await asyncio.to_thread(self.cache_dir.mkdir, parents=True, exist_ok=True)
        if self._voice is None:
            self._voice = await asyncio.to_thread(lambda: self.engine.voice)
        failures: list[str] = []
        rendered = 0
        seen: set[str] = set()
        for text, language in items:
            if not text.strip():
                failures.append(f"empty sentence ({language})")
                continue
            key = self.prompt_key(text, language)
            if key in seen or key in self._by_key:
                continue
            seen.add(key)
            try:
                duration, synthesized = await asyncio.wait_for(
                    asyncio.to_thread(self._ensure, key, text.strip(), language),
                    SYNTHESIS_TIMEOUT_SECONDS,
                )
            except (SpeechError, OSError, ValueError, TimeoutError) as error:
                failures.append(f"{language}: {text!r}: {str(error) or 'timed out'}")
                continue
            if synthesized:
                rendered += 1
                self.rendered += 1
            self._by_key[key] = _Prepared(key, duration, text.strip())
        if failures:
            raise PromptError("could not render prompts: " + "; ".join(failures))
        return rendered

    def is_prepared(self, text: str, language: str) -> bool:
        return self.prompt_key(text, language) in self._by_key

    def media_uri(self, text: str, language: str) -> str:
        """The URI to play `text`; raises PromptError if it was not prepared (a bug)."""
        return self.uri_for_key(self._prepared(text, language).key)

    def duration(self, text: str, language: str) -> float:
        """Seconds of audio for a prepared sentence."""
        return self._prepared(text, language).duration

    def _prepared(self, text: str, language: str) -> _Prepared:
        prepared = self._by_key.get(self.prompt_key(text, language))
        if prepared is None:
            raise PromptError(f"prompt not prepared ({language}): {text!r}")
        return prepared

    def _ensure(self, key: str, text: str, language: str) -> tuple[float, bool]:
        """(duration, whether it had to be synthesized): the cached files, or new ones."""
        duration = self._cached_duration(key)
        if duration is not None:
            return duration, False
        samples, rate = self.engine.synthesize(text, language)
        return self._store(key, Pcm(samples, rate)), True

    # --- custom audio files --------------------------------------------------------------

    async def prepare_file(self, path: Path, *, max_seconds: float = GREETING_MAX_SECONDS) -> str:
        """Convert a WAV/MP3 greeting or hold-music file for Asterisk; return its URI.

        Raises AudioFileError (unreadable, not audio, empty, silent, longer than
        `max_seconds`). Converted once: the cache is keyed by the file's content.
        """
        key = await asyncio.wait_for(
            asyncio.to_thread(self._prepare_file, path, max_seconds), DECODE_TIMEOUT_SECONDS
        )
        return self.uri_for_key(key)

    def _prepare_file(self, path: Path, max_seconds: float) -> str:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(b"file\x1f")
        try:
            with path.open("rb") as source:
                for block in iter(lambda: source.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            pass  # decode_file below reports the file's problem in words
        key = digest.hexdigest()
        if key in self._by_key:
            return key
        duration = self._cached_duration(key)
        if duration is None:
            duration = self._store(key, decode_file(path, max_seconds=max_seconds))
        self._by_key[key] = _Prepared(key, duration)
        return key

    def text_of(self, uri: str) -> str | None:
        """The sentence behind a URI this library handed out (for logs, tests and the demo)."""
        key = _key_in_uri(uri)
        prepared = self._by_key.get(key) if key is not None else None
        return prepared.text or None if prepared is not None else None

    def duration_of(self, uri: str) -> float:
        """Seconds of audio behind a URI this library handed out."""
        key = _key_in_uri(uri)
        if key is None or key not in self._by_key:
            raise PromptError(f"not a prepared prompt: {uri!r}")
        return self._by_key[key].duration

    # --- files and URIs ------------------------------------------------------------------

    def uri_for_key(self, key: str) -> str:
        if self.media_mode == "sound":
            return f"sound:{self.sound_prefix}/{key}"
        return f"{self.http_base}/media/{key}.wav"

    def media_file(self, name: str) -> Path | None:
        """The file behind `/media/<name>` if it is a prepared prompt, else None."""
        match = _FILE_NAME.match(name)
        if match is None or match["key"] not in self._by_key:
            return None
        path = self.cache_dir / name
        return path if path.is_file() else None

    def _paths(self, key: str) -> dict[int, Path]:
        return {
            rate: self.cache_dir / (f"{key}.wav" if rate == 8000 else f"{key}.wav{rate // 1000}")
            for rate in ASTERISK_RATES
        }

    def _cached_duration(self, key: str) -> float | None:
        paths = self._paths(key)
        if not all(path.is_file() for path in paths.values()):
            return None
        try:
            return wav_duration(paths[ASTERISK_RATES[0]])
        except ValueError:
            return None  # a damaged cache file is rendered again

    def _store(self, key: str, pcm: Pcm) -> float:
        for rate, path in self._paths(key).items():
            write_wav(path, resample(pcm, rate))
        return pcm.duration


def _key_in_uri(uri: str) -> str | None:
    match = re.search(r"([0-9a-f]{64})(?:\.wav)?$", uri)
    return match[1] if match else None


def media_routes(library: PromptLibrary) -> list[web.RouteDef]:
    """`GET /media/<hash>.wav` (and `.wav16`) for Asterisk's HTTP media cache.

    Only prepared prompts are served. The content never changes for a name, so Asterisk may
    cache it for good.
    """

    async def serve(request: web.Request) -> web.StreamResponse:
        path = library.media_file(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound(text="no such prompt")
        # Asterisk picks the format by Content-Type first, then by the URL's extension.
        # "audio/wav" is its 8 kHz `wav`; `wav16` has no MIME type, so it must fall back
        # to the extension.
        content_type = "audio/wav" if path.suffix == ".wav" else "application/octet-stream"
        return web.FileResponse(
            path,
            headers={
                "Content-Type": content_type,
                "Cache-Control": "public, max-age=31536000, immutable",
            },
        )

    return [web.get("/media/{name}", serve)]


# --- hold music -------------------------------------------------------------------------


@dataclass(frozen=True)
class MohClass:
    """Asterisk plays and loops it: `POST /channels/{id}/moh?mohClass=<name>`."""

    name: str


@dataclass(frozen=True)
class LoopingFile:
    """A file the call flow loops: `POST /channels/{id}/play?media=<media_uri>`, and again on
    each `PlaybackFinished` of that playback while the caller still holds (`replay_hold_music`).
    """

    media_uri: str
    duration: float


HoldMusic = MohClass | LoopingFile


def hold_music_source(
    setting: str | Path | None, *, default_class: str = "default"
) -> MohClass | Path:
    """What a number's hold-music setting names: nothing → the default MOH class; a path to an
    audio file (a Path, or text with "/" or ending in .wav/.mp3/...) → that file; any other
    word → that MOH class.
    """
    if isinstance(setting, Path):
        return setting
    text = (setting or "").strip()
    if not text:
        return MohClass(default_class)
    if "/" in text or Path(text).suffix.lower() in _AUDIO_SUFFIXES:
        return Path(text)
    return MohClass(text)


async def prepare_hold_music(
    library: PromptLibrary, setting: str | Path | None, *, default_class: str = "default"
) -> HoldMusic:
    """Hold music ready to play for a number's setting (see `hold_music_source`).

    Raises AudioFileError for a bad file.
    """
    source = hold_music_source(setting, default_class=default_class)
    if isinstance(source, MohClass):
        return source
    uri = await library.prepare_file(source, max_seconds=HOLD_MUSIC_MAX_SECONDS)
    return LoopingFile(uri, library.duration_of(uri))


def replay_hold_music(
    hold: HoldMusic, *, finished_playback_id: str, hold_playback_id: str | None, holding: bool
) -> bool:
    """Whether a PlaybackFinished means "play the hold file again".

    True only for a looping file, when the finished playback is the current hold playback and
    the caller is still waiting (not bridged, not hung up, not moved on to voicemail). An MOH
    class loops inside Asterisk and never needs this.
    """
    return (
        isinstance(hold, LoopingFile)
        and holding
        and hold_playback_id is not None
        and finished_playback_id == hold_playback_id
    )
