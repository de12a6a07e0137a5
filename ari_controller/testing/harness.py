"""A whole call-routing stack on one machine: the Asterisk simulator, the daemon, and Postgres.

Used by the call-flow tests, `make demo` and the benchmark: place scripted calls, wait for
them to end, read back what the caller heard and what the store holds.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from ari_controller.config import Config
from ari_controller.daemon.app import Daemon
from ari_controller.prompts.tts import SpeechEngine
from ari_controller.simulator import inspect
from ari_controller.simulator.server import Simulator
from ari_controller.simulator.sessions import DEFAULT_SESSION_LIMIT
from ari_controller.store.queries import get_alert, list_alerts

SIM_USER = "callrouting"
SIM_PASSWORD = "sim-secret"


def configure_for(
    config: Config,
    ari_url: str,
    dsn: str,
    work_dir: Path,
    sounds_dir: Path,
    *,
    username: str = SIM_USER,
    password: str = SIM_PASSWORD,
) -> Config:
    """The configuration pointed at this ARI, this database and this work directory."""
    return config.model_copy(
        update={
            "asterisk": config.asterisk.model_copy(
                update={
                    "url": ari_url,
                    "username": username,
                    "password": password,
                    "password_env": None,
                }
            ),
            "database": config.database.model_copy(
                update={"dsn": dsn, "password_env": None, "spool_dir": str(work_dir / "spool")}
            ),
            "http": config.http.model_copy(update={"host": "127.0.0.1", "port": 0}),
            "prompts": config.prompts.model_copy(
                update={
                    "media": "sound",
                    "cache_dir": str(sounds_dir / config.prompts.sound_prefix),
                }
            ),
        }
    )


class Stack:
    def __init__(self, sim: Simulator, daemon: Daemon, dsn: str) -> None:
        self.sim = sim
        self.daemon = daemon
        self.dsn = dsn
        auth = base64.b64encode(f"{SIM_USER}:{SIM_PASSWORD}".encode()).decode()
        self._headers = {"Authorization": f"Basic {auth}"}

    async def place_call(self, script: str, did: str, caller: str = "Caller <+4930999000>") -> str:
        """An inbound call from a scripted caller; returns the caller's channel id."""
        async with aiohttp.ClientSession(headers=self._headers) as session:
            async with session.post(
                self.sim.ari_url + "/channels",
                params={
                    "endpoint": f"Local/{script}@caller",
                    "context": "from-pstn",
                    "extension": did,
                    "priority": "1",
                    "callerId": caller,
                },
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response:
                body = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"originate failed: {response.status} {body}")
                return str(body["id"])

    async def wait_calls_done(self, timeout: float, settle: float = 0.3) -> None:
        """Until no call is in progress (and none started for `settle` seconds)."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if self.daemon.controller.calls or self.sim.asterisk.channels:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= settle:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"calls still in progress after {timeout} s")

    async def alerts(self) -> list[dict[str, Any]]:
        """Every alert with its calls, legs, timeline and voicemail, oldest first."""
        await self.daemon.writer.flush(10)
        pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)
        try:
            rows = await list_alerts(pool, limit=1000)
            alerts = [await get_alert(pool, row["id"]) for row in rows]
        finally:
            await pool.close()
        found = [a for a in alerts if a is not None]
        return sorted(found, key=lambda a: a["created_at"])

    def heard(self, channel_id: str) -> list[str]:
        """The texts played to a channel, in order (files and tones by their URI)."""
        library = self.daemon.library
        texts = []
        for item in inspect.channel_media(self.sim.asterisk, channel_id):
            if item.get("kind") != "playback":
                continue
            uri = str(item.get("media", ""))
            texts.append(library.text_of(uri) or uri)
        return texts

    def leftovers(self) -> dict[str, Any]:
        return inspect.leftovers(self.sim.asterisk)


@asynccontextmanager
async def running_stack(
    config: Config,
    dsn: str,
    work_dir: Path,
    *,
    time_scale: float = 1.0,
    engine: SpeechEngine | None = None,
    drain_s: float = 5.0,
    sounds_dir: Path | None = None,
    session_limit: int = DEFAULT_SESSION_LIMIT,
) -> AsyncIterator[Stack]:
    """`sounds_dir`: where prompts are rendered; share one between runs to render them once.
    `session_limit`: the simulated Asterisk's HTTP sessionlimit."""
    work_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (test set-up, before any call)
    sounds_dir = sounds_dir or work_dir / "sounds"
    sim = Simulator(
        user=SIM_USER,
        password=SIM_PASSWORD,
        app=config.asterisk.app,
        time_scale=time_scale,
        sounds_dirs=[sounds_dir],
        session_limit=session_limit,
    )
    await sim.start()
    daemon = Daemon(
        configure_for(config, sim.ari_url, dsn, work_dir, sounds_dir),
        None,
        engine=engine,
        drain_s=drain_s,
    )
    try:
        await daemon.start()
        await daemon.events.wait_connected(5)
        async with asyncio.timeout(10):
            await daemon.caught_up.wait()  # what an earlier run left is picked up
        yield Stack(sim, daemon, dsn)
    finally:
        if daemon.running is not None:
            await daemon.stop()
        await sim.stop()
