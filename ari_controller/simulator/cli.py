"""Command-line entry: `python -m ari_controller.simulator --port P ...`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from ari_controller.simulator.server import Simulator
from ari_controller.simulator.sessions import DEFAULT_SESSION_LIMIT


async def serve(
    host: str,
    port: int,
    user: str | None,
    password: str | None,
    app: str | None,
    time_scale: float,
    sounds_dirs: list[Path],
    scripts_files: list[Path],
    session_limit: int = DEFAULT_SESSION_LIMIT,
) -> None:
    """Serve a simulated Asterisk until cancelled."""
    simulator = Simulator(
        user=user,
        password=password,
        app=app,
        time_scale=time_scale,
        sounds_dirs=sounds_dirs,
        scripts_files=scripts_files,
        session_limit=session_limit,
    )
    await simulator.start(host, port)
    print(f"ARI simulator on {simulator.ari_url} (time scale {time_scale})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ari_controller.simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--app", help="accept only this Stasis application")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--sounds-dir", type=Path, action="append", default=[])
    parser.add_argument("--scripts", type=Path, action="append", default=[])
    parser.add_argument(
        "--session-limit",
        type=positive_int,
        default=DEFAULT_SESSION_LIMIT,
        help="HTTP connections open at once, as http.conf sessionlimit "
        f"(default {DEFAULT_SESSION_LIMIT}); one more is closed without an answer",
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                args.host,
                args.port,
                args.user,
                args.password,
                args.app,
                args.time_scale,
                args.sounds_dir,
                args.scripts,
                args.session_limit,
            )
        )


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
