"""Headless Chromium for the console's browser tests: Debian's `chromium` driven by Playwright,
which is told where it is and never downloads a browser of its own."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Where Debian's package puts the browser (its /usr/bin/chromium is a wrapper script).
_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "console-screenshots"


def chromium_path() -> str | None:
    """CHROMIUM if set, else Debian's chromium, else one on PATH; None when there is none."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for candidate in _CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshots_dir() -> Path:
    """CONSOLE_SCREENSHOTS if set (docs/console for the README's pictures), else build/."""
    target = Path(os.environ.get("CONSOLE_SCREENSHOTS") or SCREENSHOTS)
    target.mkdir(parents=True, exist_ok=True)
    return target
