"""What the daemon builds from its configuration: the prompt library, what a new call is built
from, and which sections a reload may change."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ari_controller.announcements import prepare_announcements
from ari_controller.config import Config
from ari_controller.daemon.controller import CallSetup
from ari_controller.planning import make_planner
from ari_controller.prompts.library import PromptLibrary
from ari_controller.prompts.tts import SpeechEngine, engine_from_config
from ari_controller.speech.availability import load_speech_models

# Sections a reload cannot change under running connections: they need a restart.
RESTART_ONLY_SECTIONS = ("asterisk", "database", "http", "prompts")


def resolve(base_dir: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def make_library(
    config: Config, base_dir: Path, engine: SpeechEngine | None = None
) -> PromptLibrary:
    settings = config.prompts
    return PromptLibrary(
        resolve(base_dir, settings.cache_dir),
        engine or engine_from_config(settings.engine, **settings.engine_options),
        media_mode=settings.media,
        sound_prefix=settings.sound_prefix,
        http_base=settings.http_base,
    )


async def build_setup(config: Config, base_dir: Path, library: PromptLibrary) -> CallSetup:
    """Everything a new call needs; raises when the configuration cannot be used."""
    announcements = await prepare_announcements(library, config.numbers, base_dir)
    await load_speech_models(config.numbers)
    return CallSetup(config, announcements, make_planner(config))


def config_digest(config: Config) -> str:
    """A short fingerprint of the configuration in use, shown by /readyz and in logs."""
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def keep_restart_only(new: Config, running: Config) -> tuple[Config, list[str]]:
    """The new configuration with the connection sections of the running one, and the names
    of those sections that changed (they take effect at the next restart)."""
    changed = [s for s in RESTART_ONLY_SECTIONS if getattr(new, s) != getattr(running, s)]
    kept = new.model_copy(update={s: getattr(running, s) for s in RESTART_ONLY_SECTIONS})
    return kept, changed
