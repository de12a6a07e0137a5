"""Logging never takes the daemon down with it."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import structlog

from ari_controller.logging import configure_logging


class _GoneReader(io.TextIOBase):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_line_that_cannot_be_written_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("info", "json")
    monkeypatch.setattr(sys, "stderr", _GoneReader())
    structlog.get_logger("test").info("call_started", call_id="c1")  # raises nothing


def test_a_stop_signal_is_obeyed_when_stderr_has_no_reader() -> None:
    """The reader of the daemon's stderr went away (a closed pipe): a signal handler that logs
    still runs to its end and the process stops, instead of dying in the handler or ignoring
    the signal."""
    program = textwrap.dedent(
        """
        import asyncio, signal, sys
        import structlog
        from ari_controller.logging import configure_logging

        configure_logging("info", "json")
        log = structlog.get_logger("daemon")

        async def main() -> None:
            stop = asyncio.Event()
            def on_term() -> None:
                log.info("daemon_stopping")
                stop.set()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_term)
            print("ready", flush=True)
            await stop.wait()
            log.info("daemon_stopped")
            print("stopped", flush=True)

        asyncio.run(main())
        """
    )
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read the daemon's log
    process = subprocess.Popen(
        [sys.executable, "-c", program], stdout=subprocess.PIPE, stderr=write_end, text=True
    )
    os.close(write_end)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=10)  # expiry: the signal was ignored
        assert rest.strip() == "stopped"
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
