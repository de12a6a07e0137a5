"""What every `ari-controller` command shares: exit codes and reading the configuration."""

from __future__ import annotations

import sys
from pathlib import Path

from ari_controller.config import Config, ConfigError, load_config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def load_or_exit(path: str) -> Config:
    """The configuration, or its problems on stderr and exit 2."""
    try:
        return load_config(Path(path))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
