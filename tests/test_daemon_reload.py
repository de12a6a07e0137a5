"""What a reload may change while the daemon runs, decided without running it."""

from __future__ import annotations

from typing import Any

from ari_controller.config import parse_config
from ari_controller.daemon.setup import config_digest, keep_restart_only


def config(**changes: Any) -> Any:
    data: dict[str, Any] = {
        "asterisk": {"url": "http://127.0.0.1:8088/ari", "app": "callrouting"},
        "users": [{"id": "ana", "name": "Ana", "contacts": ["PJSIP/ana"]}],
        "escalation_policies": [{"id": "ops", "name": "Ops", "rules": [{"users": ["ana"]}]}],
        "numbers": [{"did": "100", "name": "Acme", "routes": [{"label": "ops", "policy": "ops"}]}],
    }
    data.update(changes)
    return parse_config(data)


def test_numbers_people_and_policies_change_at_once() -> None:
    running = config()
    renamed = config(
        numbers=[{"did": "100", "name": "Acme Night", "routes": [{"label": "o", "policy": "ops"}]}]
    )
    applied, needs_restart = keep_restart_only(renamed, running)
    assert needs_restart == []
    assert applied == renamed
    assert config_digest(applied) != config_digest(running)


def test_connection_sections_keep_their_running_values_until_a_restart() -> None:
    running = config()
    moved = config(
        asterisk={"url": "http://10.0.0.9:8088/ari", "app": "other"},
        http={"port": 9999},
    )
    applied, needs_restart = keep_restart_only(moved, running)
    assert needs_restart == ["asterisk", "http"]
    assert applied.asterisk == running.asterisk and applied.http == running.http
    assert applied.numbers == moved.numbers
    # The digest names what is really in use, not what the file says.
    assert config_digest(applied) == config_digest(running)
