"""A missed call's alert, end to end through real daemons: the call ends with nobody available,
rule 1's person gets a chat message, the daemon stops, another daemon on the same database
notifies rule 2 at its delay, once; a signed webhook goes to the number's destination."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from ari_controller.config import Config, parse_config
from ari_controller.testing.harness import running_stack

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RULE_2_DELAY_S = 4.0


class Receivers:
    def __init__(self) -> None:
        self.chat: list[tuple[float, dict[str, Any]]] = []
        self.hooks: list[dict[str, Any]] = []
        self.base = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.post("/chat", self._chat), web.post("/hook", self._hook)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.Response:
        self.chat.append((time.monotonic(), await request.json()))
        return web.Response()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.hooks.append(Webhook(SECRET).verify(body, dict(request.headers)))
        return web.Response()

    def mentions(self) -> list[str]:
        return [body["text"].split(":", 1)[0] for _, body in self.chat]


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    running = Receivers()
    await running.start()
    yield running
    await running.stop()


def config(base: str) -> Config:
    return parse_config(
        {
            "users": [
                {
                    "id": "bea",
                    "name": "Bea",
                    "contacts": ["Local/busy@responders"],
                    "notify": [{"method": "chat", "to": "chat", "mention": "@bea"}],
                },
                {
                    "id": "kim",
                    "name": "Kim",
                    "contacts": ["Local/busy@responders"],
                    "notify": [{"method": "chat", "to": "chat", "mention": "@kim"}],
                },
            ],
            "escalation_policies": [
                {
                    "id": "night",
                    "rules": [
                        {"users": ["bea"], "escalation_delay_minutes": RULE_2_DELAY_S / 60},
                        {"users": ["kim"]},
                    ],
                }
            ],
            "numbers": [
                {
                    "did": "300",
                    "name": "Night Desk",
                    "routes": [{"label": "the night shift", "policy": "night"}],
                    "responders": {"ring_timeout_s": 3},
                    "voicemail": {"enabled": False},
                    "resolution": "leave_open",
                    "alerts": {"actions": [{"destination": "hook", "events": ["alert.escalated"]}]},
                }
            ],
            "alerts": {
                "destinations": [
                    {"id": "chat", "type": "slack", "url": f"{base}/chat"},
                    {"id": "hook", "type": "webhook", "url": f"{base}/hook", "secret_env": "HOOK"},
                ],
                "engine": {"poll_interval_s": 0.1},
            },
        }
    )


async def until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.05)


async def test_an_escalation_goes_on_across_a_daemon_restart_and_notifies_each_rule_once(
    database: str,
    tmp_path: Path,
    receivers: Receivers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOK", SECRET)
    cfg = config(receivers.base)
    sounds = tmp_path / "sounds"
    async with running_stack(
        cfg, database, tmp_path / "one", time_scale=10, sounds_dir=sounds
    ) as first:
        first.sim.register_script("listen", ["answer", {"wait": 600}, "hangup"])
        await first.place_call("listen", "300")
        await first.wait_calls_done(30)
        (alert,) = await first.alerts()
        assert alert["ended_reason"] == "nobody_available"
        # Rule 1 at once: Bea in the chat; the webhook, signed, with the alert.
        await until(lambda: receivers.mentions() == ["@bea"] and receivers.hooks, 5)
        notified_bea = receivers.chat[0][0]
    (hook,) = receivers.hooks
    assert hook["type"] == "alert.escalated" and hook["data"]["alert"]["id"] == str(alert["id"])
    assert hook["data"]["reason"] == "nobody_available"

    # The first daemon is gone before rule 2 is due; a new one carries the escalation on.
    assert time.monotonic() - notified_bea < RULE_2_DELAY_S
    async with running_stack(
        cfg, database, tmp_path / "two", time_scale=10, sounds_dir=sounds
    ) as second:
        await until(lambda: "@kim" in receivers.mentions(), RULE_2_DELAY_S + 5)
        notified_kim = receivers.chat[-1][0]
        await asyncio.sleep(1.0)  # anything sent twice would arrive by now
        # The attempt is counted in the metrics of the daemon that made it.
        url = f"http://127.0.0.1:{second.daemon.http_port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            metrics = await response.text()
        assert 'callrouting_alert_deliveries_total{method="slack",result="sent"} 1.0' in metrics
    assert receivers.mentions() == ["@bea", "@kim"]
    assert RULE_2_DELAY_S - 0.5 <= notified_kim - notified_bea <= RULE_2_DELAY_S + 1.5
    assert len(receivers.hooks) == 1
