"""The prompt library: rendered once, cached by content, served to Asterisk by file or HTTP."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from ari_controller.prompts.audio import AudioFileError, read_wav, rms
from ari_controller.prompts.library import (
    LoopingFile,
    MohClass,
    PromptError,
    PromptLibrary,
    hold_music_source,
    media_routes,
    prepare_hold_music,
    replay_hold_music,
)
from ari_controller.prompts.tts import EspeakNgEngine

AUDIO = Path(__file__).parent / "data" / "audio"
ITEMS = [
    ("You have reached Acme Operations.", "en"),
    ("Please hold while we connect you.", "en"),
    ("Sie haben Acme Operations erreicht.", "de"),
]


@dataclass
class CountingEngine:
    """The real espeak engine, counting how often it is asked to speak."""

    inner: EspeakNgEngine = field(default_factory=EspeakNgEngine)
    calls: list[tuple[str, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def voice(self) -> str:
        return self.inner.voice

    def synthesize(self, text: str, language: str) -> tuple[bytes, int]:
        self.calls.append((text, language))
        return self.inner.synthesize(text, language)


async def test_prepare_renders_8k_and_16k_files_named_by_hash(tmp_path: Path) -> None:
    engine = CountingEngine()
    library = PromptLibrary(tmp_path, engine)
    assert await library.prepare(ITEMS) == 3
    for text, language in ITEMS:
        uri = library.media_uri(text, language)
        assert uri.startswith("sound:callrouting/")
        name = uri.removeprefix("sound:callrouting/")
        for suffix, rate in ((".wav", 8000), (".wav16", 16000)):
            with wave.open(str(tmp_path / f"{name}{suffix}"), "rb") as reader:
                assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (
                    rate,
                    1,
                    2,
                )
            assert rms(read_wav(tmp_path / f"{name}{suffix}")) > 300
        assert 0.04 * len(text) < library.duration(text, language) < 0.2 * len(text)
    uris = {library.media_uri(text, language) for text, language in ITEMS}
    assert len(uris) == 3


async def test_second_start_renders_nothing(tmp_path: Path) -> None:
    first = CountingEngine()
    await PromptLibrary(tmp_path, first).prepare(ITEMS + ITEMS)
    assert len(first.calls) == 3  # duplicates rendered once

    second = CountingEngine()
    library = PromptLibrary(tmp_path, second)
    assert await library.prepare(ITEMS) == 0
    assert second.calls == []
    text, language = ITEMS[0]
    assert library.media_uri(text, language).startswith("sound:callrouting/")
    assert library.duration(text, language) > 1.0


async def test_a_different_voice_renders_anew(tmp_path: Path) -> None:
    await PromptLibrary(tmp_path, CountingEngine()).prepare(ITEMS[:1])
    other_voice = CountingEngine(EspeakNgEngine(variant="f3"))
    library = PromptLibrary(tmp_path, other_voice)
    assert await library.prepare(ITEMS[:1]) == 1
    assert len(other_voice.calls) == 1


async def test_an_unprepared_prompt_is_an_error_not_silence(tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path, EspeakNgEngine())
    with pytest.raises(PromptError, match="not prepared"):
        library.media_uri("Goodbye.", "en")


async def test_failed_synthesis_names_every_failing_sentence(tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path, EspeakNgEngine())
    with pytest.raises(PromptError, match="xx-YY") as raised:
        await library.prepare([("Hello.", "xx-YY"), ("Goodbye.", "en"), ("  ", "en")])
    assert "empty sentence" in str(raised.value)
    assert library.media_uri("Goodbye.", "en")  # the good one is still ready


async def test_custom_mp3_greeting_becomes_asterisk_wav(tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path / "cache", EspeakNgEngine())
    uri = await library.prepare_file(AUDIO / "welcome.mp3")
    name = uri.removeprefix("sound:callrouting/")
    eight = read_wav(tmp_path / "cache" / f"{name}.wav")
    sixteen = read_wav(tmp_path / "cache" / f"{name}.wav16")
    assert (eight.sample_rate, sixteen.sample_rate) == (8000, 16000)
    assert library.duration_of(uri) == pytest.approx(1.68, abs=0.2)
    assert rms(eight) > 300
    assert await library.prepare_file(AUDIO / "welcome.mp3") == uri


async def test_custom_file_too_long_for_a_greeting_is_refused(tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path, EspeakNgEngine())
    with pytest.raises(AudioFileError, match="longer than the 1 s allowed"):
        await library.prepare_file(AUDIO / "welcome.mp3", max_seconds=1.0)


async def test_hold_music_is_an_moh_class_or_a_looping_file(tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path, EspeakNgEngine())
    assert await prepare_hold_music(library, None) == MohClass("default")
    assert await prepare_hold_music(library, "jazz") == MohClass("jazz")
    assert hold_music_source("music/hold.mp3") == Path("music/hold.mp3")
    looping = await prepare_hold_music(library, AUDIO / "welcome.mp3")
    assert isinstance(looping, LoopingFile)
    assert looping.duration > 1.0

    def replay(hold: MohClass | LoopingFile, finished: str, holding: bool = True) -> bool:
        return replay_hold_music(
            hold, finished_playback_id=finished, hold_playback_id="hold-1", holding=holding
        )

    assert replay(looping, "hold-1") is True
    assert replay(looping, "announcement-7") is False
    assert replay(looping, "hold-1", holding=False) is False
    assert replay(MohClass("default"), "hold-1") is False


@pytest.fixture
async def media_server(tmp_path: Path) -> AsyncIterator[tuple[str, PromptLibrary]]:
    library = PromptLibrary(
        tmp_path, EspeakNgEngine(), media_mode="http", http_base="http://asterisk-sees-me:1"
    )
    app = web.Application()
    app.add_routes(media_routes(library))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", library
    finally:
        await runner.cleanup()


async def test_http_media_route_serves_prepared_prompts_only(
    media_server: tuple[str, PromptLibrary],
) -> None:
    base, library = media_server
    await library.prepare(ITEMS[:1])
    uri = library.media_uri(*ITEMS[0])
    assert uri.startswith("http://asterisk-sees-me:1/media/") and uri.endswith(".wav")
    path = uri.removeprefix("http://asterisk-sees-me:1")
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(base + path) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "audio/wav"
            body = await response.read()
        pcm = read_wav(body)
        assert pcm.sample_rate == 8000
        assert pcm.duration == pytest.approx(library.duration(*ITEMS[0]), abs=0.01)
        async with session.get(base + path + "16") as response:
            assert response.status == 200
            # Asterisk would take audio/wav for 8 kHz; the extension must decide here.
            assert response.headers["Content-Type"] == "application/octet-stream"
            assert read_wav(await response.read()).sample_rate == 16000
        for bad in ("/media/" + "0" * 64 + ".wav", "/media/..%2Fetc%2Fpasswd", "/media/x.wav"):
            async with session.get(base + bad) as response:
                assert response.status == 404, bad


def test_http_mode_needs_a_base_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="http_base"):
        PromptLibrary(tmp_path, EspeakNgEngine(), media_mode="http")


async def test_an_absolute_sound_prefix_names_the_shared_directory(tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path, EspeakNgEngine(), sound_prefix="/srv/prompts")
    await library.prepare(ITEMS[:1])
    uri = library.media_uri(*ITEMS[0])
    assert uri.startswith("sound:/srv/prompts/")
    assert (tmp_path / (uri.removeprefix("sound:/srv/prompts/") + ".wav16")).is_file()


async def test_prepare_does_not_block_the_event_loop(tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path, EspeakNgEngine())
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await library.prepare([(f"Option number {n}.", "en") for n in range(5)])
    task.cancel()
    assert ticks >= 5  # the loop ran between renders
