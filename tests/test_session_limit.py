"""Asterisk's HTTP server serves at most http.conf `sessionlimit` connections, shared by every
ARI client and websocket, and closes any connection beyond it at once. With another client
holding most of them, calls must still go exactly as they would: what the controller's client
may safely send again is sent again."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ari_controller.config import parse_config
from ari_controller.testing.harness import running_stack

TIME_SCALE = 8.0
CALLERS = 8
SESSION_LIMIT = 40
# Connections another ARI client keeps open: the controller is left with a handful.
HELD_BY_OTHERS = 32

CONFIG: dict[str, Any] = {
    "users": [
        {"id": "ana", "name": "Ana", "contacts": ["Local/accept@responders"]},
        {"id": "nick", "name": "Nick", "contacts": ["Local/noanswer@responders"]},
        {"id": "sid", "name": "Sid", "contacts": ["Local/silent@responders"]},
        {"id": "dan", "name": "Dan", "contacts": ["Local/decline@responders"]},
    ],
    "escalation_policies": [
        {
            "id": "everyone",
            "rules": [{"users": ["ana", "nick", "sid", "dan"]}],
            "call_everyone_on_rule": True,
        }
    ],
    "numbers": [
        {
            "did": "100",
            "name": "Acme Operations",
            "mode": "simultaneous",
            "routes": [{"label": "database", "policy": "everyone"}],
            "voicemail": {"enabled": False},
        }
    ],
}
# Listens to the greeting, is connected, talks, hangs up: 10 s of real time, room enough for
# all eight to be connected through a handful of sessions on a busy CI machine (5 s once
# was not).
CALLER = [{"answer": {}}, {"wait": 80}, {"hangup": {}}]


async def test_calls_go_through_while_other_clients_hold_most_sessions(
    database: str, tmp_path: Path
) -> None:
    config = parse_config(CONFIG, "session limit")
    async with (
        running_stack(
            config, database, tmp_path, time_scale=TIME_SCALE, session_limit=SESSION_LIMIT
        ) as stack,
        AsyncExitStack() as held,
    ):
        stack.sim.register_script("talks", CALLER)
        callers = [await stack.place_call("talks", "100") for _ in range(CALLERS)]
        url = urlsplit(stack.sim.ari_url)
        for _ in range(HELD_BY_OTHERS):
            _, writer = await asyncio.open_connection(url.hostname, url.port)
            held.callback(writer.close)
        await stack.wait_calls_done(60)
        refused = stack.sim.sessions.refused
        closed = {
            result: stack.daemon.metrics.ari_closed_connections.labels(result)._value.get()
            for result in ("repeated", "gave_up")
        }
        alerts = await stack.alerts()
        leftovers = stack.leftovers()

    assert refused > 0, "the test did not put the controller past the session limit"
    by_caller = {alert["calls"][0]["caller_channel_id"]: alert for alert in alerts}
    assert set(by_caller) == set(callers)
    for alert in alerts:
        assert alert["ended_reason"] == "connected", alert
        assert alert["acknowledged_by"] == "ana"
    assert closed["repeated"] > 0
    assert closed["gave_up"] == 0
    assert leftovers == {"channels": [], "bridges": [], "playbacks": [], "recordings": []}
