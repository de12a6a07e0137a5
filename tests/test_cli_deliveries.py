"""`ari-controller deliveries list|retry|enable`, `notify-test` and what check-config says about
alert destinations: against a real Postgres and a real local HTTP receiver."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from standardwebhooks.webhooks import Webhook

from ari_controller.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from tests.alert_rows import insert_alert, insert_delivery
from tests.fixtures_postgres import run_async

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["--log-format", "console", *argv])
    except SystemExit as exited:
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def with_conn(dsn: str, work: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return run_async(run)


def test_dead_deliveries_are_listed_and_sent_again_and_a_disabled_destination_enabled(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def make(conn: Any) -> tuple[uuid.UUID, uuid.UUID]:
        alert_id = await insert_alert(conn)
        dead = await insert_delivery(conn, alert_id, user_id="ana", state="dead")
        sent = await insert_delivery(conn, alert_id, user_id=None, state="sent")
        await conn.execute(
            "INSERT INTO destination_state VALUES ('chat-ops', now(), 'HTTP 410 Gone')"
        )
        return dead, sent

    dead, sent = with_conn(database, make)
    code, out, _ = cli(capsys, "deliveries", "list", "--dsn", database, "--state", "dead")
    assert code == EXIT_OK
    assert str(dead) in out and str(sent) not in out
    assert "destination 'chat-ops' disabled since" in out and "HTTP 410 Gone" in out

    code, out, _ = cli(capsys, "deliveries", "retry", str(dead), "--dsn", database)
    assert code == EXIT_OK and "sent again" in out
    state = with_conn(
        database, lambda c: c.fetchval("SELECT state FROM deliveries WHERE id = $1", dead)
    )
    assert state == "pending"
    # Only a dead letter can be sent again; ids are checked.
    code, _, err = cli(capsys, "deliveries", "retry", str(sent), "--dsn", database)
    assert code == EXIT_USAGE and "no dead delivery" in err
    code, _, err = cli(capsys, "deliveries", "retry", "12", "--dsn", database)
    assert code == EXIT_USAGE and "is not a delivery id" in err

    code, out, _ = cli(capsys, "deliveries", "enable", "chat-ops", "--dsn", database)
    assert code == EXIT_OK and "enabled" in out
    code, out, _ = cli(capsys, "deliveries", "list", "--dsn", database, "--json")
    assert json.loads(out)["disabled_destinations"] == []
    code, _, err = cli(capsys, "deliveries", "list", "--dsn", database, "--state", "lost")
    assert code == EXIT_USAGE and "unknown delivery state" in err


class Receiver(BaseHTTPRequestHandler):
    got: list[tuple[str, dict[str, str], bytes]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Receiver.got.append((self.path, dict(self.headers.items()), body))
        self.send_response(Receiver.status)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.got, Receiver.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def notify_config(tmp_path: Path, base: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "users": [
                    {
                        "id": "ana",
                        "name": "Ana",
                        "contacts": ["PJSIP/ana"],
                        "notify": [
                            {"method": "chat", "to": "chat", "mention": "@ana"},
                            {"method": "webhook", "to": "pager", "after_minutes": 2},
                        ],
                    }
                ],
                "escalation_policies": [{"id": "p", "rules": [{"users": ["ana"]}]}],
                "numbers": [
                    {"did": "1", "name": "Desk", "routes": [{"label": "x", "policy": "p"}]}
                ],
                "alerts": {
                    "destinations": [
                        {"id": "chat", "type": "slack", "url": f"{base}/chat"},
                        {
                            "id": "pager",
                            "type": "webhook",
                            "url": f"{base}/hook",
                            "secret_env": "PAGER_SECRET",
                        },
                    ]
                },
            }
        )
    )
    return path


def test_notify_test_sends_a_signed_test_message_through_the_persons_rule(
    tmp_path: Path,
    receiver: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAGER_SECRET", SECRET)
    config = str(notify_config(tmp_path, receiver))
    code, out, _ = cli(
        capsys, "notify-test", "--config", config, "--user", "ana", "--method", "webhook"
    )
    assert code == EXIT_OK and "webhook to pager: HTTP 200" in out
    ((path, headers, body),) = Receiver.got
    assert path == "/hook"
    message = Webhook(SECRET).verify(body, {k.lower(): v for k, v in headers.items()})
    assert message["type"] == "test" and message["data"]["user"]["id"] == "ana"

    code, out, _ = cli(
        capsys, "notify-test", "--config", config, "--user", "ana", "--method", "chat"
    )
    assert code == EXIT_OK and "chat to chat: HTTP 200" in out
    assert "@ana" in json.loads(Receiver.got[1][2])["text"]

    Receiver.status = 500
    code, out, _ = cli(
        capsys, "notify-test", "--config", config, "--user", "ana", "--method", "chat"
    )
    assert code == EXIT_FAILED and "HTTP 500" in out
    code, _, err = cli(
        capsys, "notify-test", "--config", config, "--user", "bo", "--method", "chat"
    )
    assert code == EXIT_USAGE and "no user 'bo'" in err


def test_check_config_names_missing_secrets_and_bad_destinations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAGER_SECRET", raising=False)
    config = notify_config(tmp_path, "http://127.0.0.1:9")
    code, _, err = cli(capsys, "check-config", str(config))
    assert code == EXIT_USAGE
    assert "alerts.destinations[1].secret_env: environment variable PAGER_SECRET is not set" in err
    monkeypatch.setenv("PAGER_SECRET", SECRET)
    assert cli(capsys, "check-config", str(config))[0] == EXIT_OK

    data = yaml.safe_load(config.read_text())
    data["users"][0]["notify"][0]["to"] = "pager"  # a chat rule to a webhook destination
    data["users"][0]["notify"][1]["to"] = "nowhere"
    data["numbers"][0]["alerts"] = {"actions": [{"destination": "gone"}]}
    config.write_text(yaml.safe_dump(data))
    code, _, err = cli(capsys, "check-config", str(config))
    assert code == EXIT_USAGE
    assert "users[0].notify[0].to: 'pager' is a webhook destination, not chat" in err
    assert "users[0].notify[1].to: unknown destination 'nowhere'" in err
    assert "numbers[0].alerts.actions[0].destination: unknown destination 'gone'" in err
