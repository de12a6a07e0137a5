"""Which engine turns a sentence into speech, and how each engine is driven.

Every engine is blocking and returns raw mono 16-bit PCM with its own sample rate; callers
resample (`prompts.audio`) and run synthesis in a thread (`asyncio.to_thread`), never on the
event loop during a call. The default engine is espeak-ng from the `espeakng-loader` wheel,
so a fresh machine needs nothing but pip.
"""

from __future__ import annotations

import ctypes
import io
import json
import shutil
import subprocess
import sys
import threading
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "EngineConfigError",
    "EspeakCommandEngine",
    "EspeakNgEngine",
    "PiperEngine",
    "SpeechEngine",
    "SpeechError",
    "engine_from_config",
]

# A synthesis that takes longer than this is stuck (espeak renders ~100x real time).
SYNTHESIS_TIMEOUT_SECONDS = 60.0


class SpeechError(RuntimeError):
    """A sentence could not be synthesized (unknown language, engine failure)."""


class EngineConfigError(ValueError):
    """The configured engine cannot work on this machine (missing executable, voice file)."""


@runtime_checkable
class SpeechEngine(Protocol):
    """Turns text into mono 16-bit little-endian PCM.

    `name` and `voice` identify the sound of the output: both are part of the prompt cache key,
    so changing the voice (or its settings) renders prompts anew.
    """

    @property
    def name(self) -> str: ...

    @property
    def voice(self) -> str: ...

    def synthesize(self, text: str, language: str) -> tuple[bytes, int]:
        """Return `(pcm16_mono_le, sample_rate)`. Blocking; raises SpeechError."""
        ...


def language_candidates(language: str) -> list[str]:
    """Voice names to try for a language tag, most specific first ("de-DE" → de-de, de)."""
    tag = language.strip().replace("_", "-").lower()
    primary = tag.split("-", 1)[0]
    return [tag] if tag == primary else [tag, primary]


# --- espeak-ng through the wheel's shared library -------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EE_OK = 0

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _EspeakLibrary:
    """The process-wide libespeak-ng: it has global state, so one synthesis at a time."""

    _instance: _EspeakLibrary | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        import espeakng_loader  # type: ignore[import-untyped]

        self.lock = threading.Lock()
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p

        data_path = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 200, data_path, _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise EngineConfigError(f"espeak-ng could not start (data in {data_path.decode()})")
        self.sample_rate: int = rate
        self.version: str = (lib.espeak_Info(None) or b"?").decode()
        self._chunks: list[bytes] = []
        # Kept on the instance: ctypes must not free the trampoline while C holds it.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> _EspeakLibrary:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _collect(self, wav: Any, numsamples: int, _events: Any) -> int:
        if numsamples > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, numsamples * 2))
        return 0  # 0 = go on synthesizing

    def synthesize(self, text: str, voice_names: list[str], rate: int, pitch: int) -> bytes:
        with self.lock:
            lib = self._lib
            for name in voice_names:
                if lib.espeak_SetVoiceByName(name.encode()) == _EE_OK:
                    break
            else:
                raise SpeechError(f"espeak-ng has no voice for {voice_names[0]!r}")
            lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
            lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
            self._chunks = []
            encoded = text.encode("utf-8") + b"\0"
            status = lib.espeak_Synth(
                encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            if status != _EE_OK:
                raise SpeechError(f"espeak-ng failed ({status}) on {text!r}")
            lib.espeak_Synchronize()
            pcm = b"".join(self._chunks)
            self._chunks = []
            return pcm


@dataclass(frozen=True)
class EspeakNgEngine:
    """espeak-ng loaded with ctypes from the `espeakng-loader` wheel (22,050 Hz output).

    `variant` is an espeak voice variant such as "f3" (a female voice); `rate` is in words
    per minute (espeak's default, 175, is fast for a phone line).
    """

    rate: int = 155
    pitch: int = 50
    variant: str | None = None

    def __post_init__(self) -> None:
        _check_voice_settings(self.rate, self.variant)
        if not isinstance(self.pitch, int) or not 0 <= self.pitch <= 99:
            raise EngineConfigError(f"espeak-ng pitch must be 0 to 99, not {self.pitch!r}")

    @property
    def name(self) -> str:
        return "espeak-ng"

    @property
    def voice(self) -> str:
        library = _EspeakLibrary.get()
        return f"{library.version};variant={self.variant};rate={self.rate};pitch={self.pitch}"

    def synthesize(self, text: str, language: str) -> tuple[bytes, int]:
        library = _EspeakLibrary.get()
        names = language_candidates(language)
        if self.variant:
            names = [f"{name}+{self.variant}" for name in names]
        pcm = library.synthesize(text, names, self.rate, self.pitch)
        if not pcm:
            raise SpeechError(f"espeak-ng produced no audio for {text!r}")
        return pcm, library.sample_rate


# --- engines that run an executable ---------------------------------------------------------


def _run(command: list[str], stdin: bytes, what: str) -> bytes:
    try:
        completed = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            timeout=SYNTHESIS_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise SpeechError(f"{what} took longer than {SYNTHESIS_TIMEOUT_SECONDS:.0f} s") from error
    except OSError as error:
        raise SpeechError(f"{what} could not run: {error}") from error
    if completed.returncode != 0:
        detail = completed.stderr.decode(errors="replace").strip()[-500:]
        raise SpeechError(f"{what} exited with {completed.returncode}: {detail}")
    return completed.stdout


def _check_voice_settings(rate: int, variant: str | None) -> None:
    if not isinstance(rate, int) or not 80 <= rate <= 450:
        raise EngineConfigError(f"espeak-ng rate must be 80 to 450 words a minute, not {rate!r}")
    if variant is not None and not (isinstance(variant, str) and variant.isalnum()):
        raise EngineConfigError(f"espeak-ng variant must be a name such as f3, not {variant!r}")


def _find_executable(executable: str | Path, hint: str) -> str:
    found = shutil.which(str(executable))
    if found is None and not Path(executable).parent.parts:
        # pip installs a tool's command beside the interpreter (the venv's bin), which is on
        # no PATH when the daemon runs as a service: look there too.
        found = shutil.which(str(executable), path=str(Path(sys.executable).parent))
    if found is None:
        raise EngineConfigError(f"{executable!s} not found: {hint}")
    return found


@dataclass(frozen=True)
class EspeakCommandEngine:
    """The `espeak-ng` command (Debian package `espeak-ng`): a fallback for the wheel."""

    executable: str = "espeak-ng"
    rate: int = 155
    variant: str | None = None

    def __post_init__(self) -> None:
        _check_voice_settings(self.rate, self.variant)
        _find_executable(self.executable, "install the Debian package espeak-ng")

    @property
    def name(self) -> str:
        return "espeak-ng-command"

    @property
    def voice(self) -> str:
        return f"variant={self.variant};rate={self.rate}"

    def synthesize(self, text: str, language: str) -> tuple[bytes, int]:
        voice = language_candidates(language)[-1]
        if self.variant:
            voice = f"{voice}+{self.variant}"
        command = [self.executable, "-v", voice, "-s", str(self.rate), "--stdout", "--stdin"]
        output = _run(command, text.encode("utf-8"), "espeak-ng")
        try:
            with wave.open(io.BytesIO(output), "rb") as reader:
                if reader.getnchannels() != 1 or reader.getsampwidth() != 2:
                    raise SpeechError("espeak-ng wrote audio that is not mono 16-bit")
                return reader.readframes(reader.getnframes()), reader.getframerate()
        except (wave.Error, EOFError) as error:
            raise SpeechError(f"espeak-ng wrote no valid WAV: {error}") from error


@dataclass(frozen=True)
class PiperEngine:
    """A `piper` executable with a voice file the user provides (`voice.onnx` + `.onnx.json`).

    The voice file decides the language: one engine per language, configured per number.
    The sample rate comes from the voice's JSON config. `length_scale` slows speech down
    (1.0 is the voice's own pace); `noise_scale` and `noise_w_scale` are piper's variation in
    tone and timing: its defaults make every rendering a little different, 0 makes them
    identical (the prompt cache and the tests want the same audio for the same text).
    """

    model: Path
    executable: str = "piper"
    speaker: int | None = None
    length_scale: float | None = None
    noise_scale: float | None = None
    noise_w_scale: float | None = None
    _command: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        if self.speaker is not None and not isinstance(self.speaker, int):
            raise EngineConfigError(f"piper speaker must be a number, not {self.speaker!r}")
        for name, low, high in (
            ("length_scale", 0.25, 4.0),
            ("noise_scale", 0.0, 2.0),
            ("noise_w_scale", 0.0, 2.0),
        ):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int | float) or not low <= value <= high
            ):
                raise EngineConfigError(f"piper {name} must be {low} to {high}, not {value!r}")
        command = _find_executable(
            self.executable, "install piper (pip install piper-tts) or its path"
        )
        object.__setattr__(self, "_command", command)  # frozen: resolved once, here
        if not self.model.is_file():
            raise EngineConfigError(f"piper voice file {self.model} does not exist")
        config = self._config_path()
        if not config.is_file():
            raise EngineConfigError(f"piper voice config {config} does not exist")
        self.sample_rate  # noqa: B018  (reads and checks the config now, not on first call)

    def _config_path(self) -> Path:
        return self.model.with_name(self.model.name + ".json")

    @property
    def sample_rate(self) -> int:
        try:
            config = json.loads(self._config_path().read_text(encoding="utf-8"))
            rate = int(config["audio"]["sample_rate"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise EngineConfigError(
                f"piper voice config {self._config_path()} has no audio.sample_rate"
            ) from error
        return rate

    @property
    def name(self) -> str:
        return "piper"

    def _options(self) -> list[str]:
        options = []
        if self.speaker is not None:
            options += ["--speaker", str(self.speaker)]
        for flag, value in (
            ("--length-scale", self.length_scale),
            ("--noise-scale", self.noise_scale),
            ("--noise-w-scale", self.noise_w_scale),
        ):
            if value is not None:
                options += [flag, str(value)]
        return options

    @property
    def voice(self) -> str:
        stat = self.model.stat()
        options = " ".join(self._options())
        return f"{self.model.name};size={stat.st_size};mtime={stat.st_mtime_ns};{options}"

    def synthesize(self, text: str, language: str) -> tuple[bytes, int]:
        command = [self._command, "--model", str(self.model), "--output_raw", *self._options()]
        pcm = _run(command, text.encode("utf-8") + b"\n", "piper")
        if not pcm:
            raise SpeechError(f"piper produced no audio for {text!r}")
        return pcm[: len(pcm) - len(pcm) % 2], self.sample_rate


def engine_from_config(kind: str = "espeak-ng", **options: Any) -> SpeechEngine:
    """Build an engine by name; raises EngineConfigError at configuration time, not on a call.

    kinds: "espeak-ng" (default, the wheel; options rate, pitch, variant),
    "espeak-ng-command" (executable, rate, variant), "piper" (model, executable, speaker,
    length_scale, noise_scale, noise_w_scale).
    """
    for name in ("rate", "pitch", "speaker"):
        value = options.get(name)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            options[name] = int(value)  # from YAML or the command line as text
    for name in ("length_scale", "noise_scale", "noise_w_scale"):
        value = options.get(name)
        if isinstance(value, str):
            try:
                options[name] = float(value)
            except ValueError:
                raise EngineConfigError(f"piper {name} must be a number, not {value!r}") from None
    try:
        if kind == "espeak-ng":
            engine: SpeechEngine = EspeakNgEngine(**options)
            engine.voice  # noqa: B018  (loads the library now so a broken install fails early)
            return engine
        if kind == "espeak-ng-command":
            return EspeakCommandEngine(**options)
        if kind == "piper":
            if "model" not in options:
                raise EngineConfigError("piper needs a voice file: model: path/to/voice.onnx")
            options["model"] = Path(options["model"])
            return PiperEngine(**options)
    except TypeError as error:
        raise EngineConfigError(f"bad options for text-to-speech engine {kind}: {error}") from error
    raise EngineConfigError(
        f"unknown text-to-speech engine {kind!r} (espeak-ng, espeak-ng-command, piper)"
    )
