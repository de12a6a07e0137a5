"""The README's quick start is what a newcomer runs first: it must hold on a fresh clone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _section(text: str, heading: str) -> str:
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_quick_start_asks_only_for_what_pip_cannot_bring() -> None:
    quick_start = _section((ROOT / "README.md").read_text(), "Quick start")
    # Only Python's venv module comes from the system; PostgreSQL comes from a wheel.
    system_packages = re.findall(r"apt-get install ([\w .-]+)", quick_start)
    assert system_packages == ["python3-venv"]
    first_block = re.findall(r"```sh\n(.*?)```", quick_start, re.DOTALL)[0]
    run = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert run == ["make demo", "make test"]


def test_the_quick_start_commands_are_makefile_targets_that_install_everything() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        rule = re.search(rf"^{target}: (.*)$", makefile, re.MULTILINE)
        assert rule is not None, f"no `{target}` target"
        assert "$(STAMP)" in rule.group(1), f"`make {target}` must set up the environment"
    # The environment is the project's dev extra, which carries the embedded PostgreSQL.
    assert "pip install --quiet -e '.[dev]'" in makefile
    pyproject = (ROOT / "pyproject.toml").read_text()
    dev = pyproject[pyproject.index("dev = [") :]
    assert '"pgserver' in dev[: dev.index("]")]
