"""What callers and responders hear: the sentence catalogue, text-to-speech, custom audio.

- `catalogue`: every sentence per language (`render`, `menu_sentences`, `check_catalogue`).
- `tts`: pluggable speech engines (espeak-ng from the wheel by default, piper optional).
- `audio`: decoding, resampling and writing the WAV files Asterisk plays.
- `library`: prompts rendered at start-up, cached by content hash, and their media URIs.
- `preview`: the greeting as one WAV file, to listen to before going live.
"""

from ari_controller.prompts.audio import AudioFileError
from ari_controller.prompts.catalogue import (
    KEYS,
    CatalogueError,
    check_catalogue,
    menu_options,
    menu_sentences,
    render,
    responder_hint,
    spoken_key,
)
from ari_controller.prompts.library import (
    HoldMusic,
    LoopingFile,
    MohClass,
    PromptError,
    PromptLibrary,
    hold_music_source,
    media_routes,
    prepare_hold_music,
    replay_hold_music,
)
from ari_controller.prompts.preview import preview
from ari_controller.prompts.tts import (
    EngineConfigError,
    EspeakNgEngine,
    SpeechEngine,
    SpeechError,
    engine_from_config,
)

__all__ = [
    "KEYS",
    "AudioFileError",
    "CatalogueError",
    "EngineConfigError",
    "EspeakNgEngine",
    "HoldMusic",
    "LoopingFile",
    "MohClass",
    "PromptError",
    "PromptLibrary",
    "SpeechEngine",
    "SpeechError",
    "check_catalogue",
    "engine_from_config",
    "hold_music_source",
    "media_routes",
    "menu_options",
    "menu_sentences",
    "prepare_hold_music",
    "preview",
    "render",
    "replay_hold_music",
    "responder_hint",
    "spoken_key",
]
