"""Fixtures for the Asterisk simulator: a simulated Asterisk on a free port, and a small
ARI client for tests that talk to it directly."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from ari_controller.simulator import Simulator

SIM_USER = "tester"
SIM_PASSWORD = "secret"
SIM_APP = "callrouting"
FAST = 20.0  # time scale of the quick simulator tests


class AriTestClient:
    """REST calls plus an events websocket with a wait-for-event helper."""

    def __init__(self, sim: Simulator, app: str = SIM_APP) -> None:
        self.sim = sim
        self.app = app
        token = base64.b64encode(f"{SIM_USER}:{SIM_PASSWORD}".encode()).decode()
        self.session = aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"})
        self.events: list[dict[str, Any]] = []
        self._new_event = asyncio.Event()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.ws = await self.session.ws_connect(
            f"{self.sim.ari_url}/events", params={"app": self.app}
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.events.append(json.loads(message.data))
                self._new_event.set()

    async def rest(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        body = params.pop("json", None)
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
        async with self.session.request(
            method, self.sim.ari_url + path, params=query, json=body
        ) as reply:
            raw = await reply.read()
            if reply.content_type == "application/json" and raw:
                return reply.status, json.loads(raw)
            return reply.status, raw

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for ev in self.events[seen:]:
                    if predicate(ev):
                        return ev
                seen = len(self.events)
                self._new_event.clear()
                await self._new_event.wait()

    async def wait_type(
        self, kind: str, channel: str | None = None, timeout: float = 5.0
    ) -> dict[str, Any]:
        return await self.wait_for(
            lambda e: (
                e["type"] == kind and (channel is None or e.get("channel", {}).get("id") == channel)
            ),
            timeout,
        )

    async def inbound_call(self, script: str, did: str = "100") -> str:
        """Place a scripted caller into the app; returns the app's channel id."""
        status, _ = await self.rest(
            "POST",
            "/channels",
            endpoint=f"Local/{script}@caller",
            extension=did,
            context="from-pstn",
            priority=1,
            callerId="Caller <+493012345678>",
        )
        assert status == 200
        start = await self.wait_for(
            lambda e: (
                e["type"] == "StasisStart"
                and e["args"] == [did]
                and e["channel"]["name"].startswith(f"Local/{script}@")
            )
        )
        return str(start["channel"]["id"])

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
        await self.session.close()


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    """A simulated Asterisk at 20x speed on a free port (user tester/secret)."""
    sim = Simulator(user=SIM_USER, password=SIM_PASSWORD, time_scale=FAST)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def ari(simulator: Simulator) -> AsyncIterator[AriTestClient]:
    """A connected client of `simulator` for app `callrouting`."""
    client = AriTestClient(simulator)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()
