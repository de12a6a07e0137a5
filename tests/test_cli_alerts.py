"""`ari-controller alerts list|show|ack|resolve|escalate` and `tokens add|list|revoke` against
a real Postgres: what they print and their exit codes."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from ari_controller.alerts.tokens import hash_token
from ari_controller.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from ari_controller.testing.postgres import free_port
from tests.alert_rows import T0, insert_alert, insert_call, insert_delivery, insert_escalation
from tests.fixtures_postgres import run_async


def sql(dsn: str, query: str, *args: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return run_async(run)


def with_conn(dsn: str, work: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return run_async(run)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout, stderr, as the process would have them (SystemExit included)."""
    try:
        code = main(["--log-format", "console", *argv])
    except SystemExit as exited:
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def alerts(database: str) -> dict[str, uuid.UUID]:
    async def make(conn: Any) -> dict[str, uuid.UUID]:
        voicemail = await insert_alert(conn, created_at=T0, ended_reason="voicemail")
        await insert_call(conn, voicemail, audio=b"RIFF....WAVE")
        busy = await insert_alert(conn, created_at=T0 + timedelta(minutes=1), number="+492")
        await insert_escalation(conn, busy)
        await insert_delivery(conn, busy, user_id="alice")
        done = await insert_alert(conn, created_at=T0 + timedelta(minutes=2), status="resolved")
        return {"voicemail": voicemail, "busy": busy, "done": done}

    made: dict[str, uuid.UUID] = with_conn(database, make)
    return made


def test_alerts_list_as_a_table_and_as_json(
    database: str, alerts: dict[str, uuid.UUID], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "alerts", "list", "--dsn", database)
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID", "CREATED", "(UTC)", "STATUS", "NUMBER", "ROUTE", "CALLER", "ENDED", "ESC",
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[1:]] == [
        str(alerts["done"]),
        str(alerts["busy"]),
        str(alerts["voicemail"]),
    ]
    assert "2026-03-02 09:01:00  open" in lines[2]

    code, out, _ = cli(capsys, "alerts", "list", "--dsn", database, "--status", "open", "--json")
    assert code == EXIT_OK
    listed = json.loads(out)
    assert [a["id"] for a in listed] == [str(alerts["busy"]), str(alerts["voicemail"])]
    assert listed[0]["created_at"] == (T0 + timedelta(minutes=1)).isoformat()

    code, out, _ = cli(capsys, "alerts", "list", "--dsn", database, "--number", "+492")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(alerts["busy"])]
    code, out, _ = cli(capsys, "alerts", "list", "--dsn", database, "--limit", "1", "--json")
    assert [a["id"] for a in json.loads(out)] == [str(alerts["done"])]
    code, out, _ = cli(capsys, "alerts", "list", "--dsn", database, "--number", "+499")
    assert (code, out) == (EXIT_OK, "no alerts\n")


def test_alerts_list_reads_the_database_from_the_configuration(
    database: str,
    alerts: dict[str, uuid.UUID],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"dsn": database},
                "escalation_policies": [{"id": "p", "name": "P", "rules": [{"users": ["u"]}]}],
                "users": [{"id": "u", "name": "U", "contacts": ["PJSIP/u"]}],
                "numbers": [{"did": "1", "name": "N", "routes": [{"label": "x", "policy": "p"}]}],
            }
        )
    )
    code, out, _ = cli(capsys, "alerts", "list", "--config", str(config), "--json")
    assert code == EXIT_OK
    assert len(json.loads(out)) == 3


def test_alerts_show_text_and_json(
    database: str, alerts: dict[str, uuid.UUID], capsys: pytest.CaptureFixture[str]
) -> None:
    alert_id = alerts["voicemail"]
    code, out, _ = cli(capsys, "alerts", "show", str(alert_id), "--dsn", database)
    assert code == EXIT_OK
    assert out.startswith(f"alert {alert_id}: open\n")
    assert "  number:   Ops hotline (+4930123456)" in out
    assert "  route:    database (policy db-policy)" in out
    assert "  leg 1: alice PJSIP/alice sequential: busy (cause 17)" in out
    assert "  leg 2: carol PJSIP/carol sequential: no_answer (cause 19)" in out
    assert 'call_started  {"n": 1}' in out
    assert "voicemail: vm-1, 4.5 s, wav, 12 bytes stored" in out

    code, out, _ = cli(capsys, "alerts", "show", str(alerts["busy"]), "--dsn", database, "--json")
    assert code == EXIT_OK
    shown = json.loads(out)
    assert (shown["id"], shown["calls"], shown["voicemail"]) == (str(alerts["busy"]), [], None)
    assert [d["user_id"] for d in shown["deliveries"]] == ["alice"]


def test_ack_resolve_escalate_and_their_exit_codes(
    database: str, alerts: dict[str, uuid.UUID], capsys: pytest.CaptureFixture[str]
) -> None:
    busy, voicemail, done = (str(alerts[k]) for k in ("busy", "voicemail", "done"))

    code, out, _ = cli(capsys, "alerts", "escalate", voicemail, "--dsn", database, "--by", "ann")
    assert (code, out) == (EXIT_OK, f"alert {voicemail} escalated by ann (escalation 1)\n")

    code, out, _ = cli(capsys, "alerts", "ack", busy, "--dsn", database, "--by", "alice")
    assert code == EXIT_OK
    assert out == (
        f"alert {busy} acknowledged by alice (escalation stopped, 1 pending message(s) cancelled)\n"
    )
    code, out, _ = cli(capsys, "alerts", "ack", busy, "--dsn", database, "--by", "bob")
    assert (code, out) == (EXIT_OK, f"alert {busy}: already acknowledged (nothing changed)\n")
    code, _, err = cli(capsys, "alerts", "escalate", busy, "--dsn", database)
    assert (code, err) == (
        EXIT_FAILED,
        f"error: alert {busy}: the alert is acknowledged: not escalated\n",
    )
    code, out, _ = cli(capsys, "alerts", "resolve", busy, "--dsn", database)
    assert code == EXIT_OK
    assert out.startswith(f"alert {busy} resolved by ")

    code, _, err = cli(capsys, "alerts", "ack", done, "--dsn", database)
    assert (code, err) == (
        EXIT_FAILED,
        f"error: alert {done}: the alert is resolved: not acknowledged\n",
    )

    rows = sql(
        database,
        "SELECT kind, data FROM alert_log WHERE alert_id = $1 ORDER BY id",
        uuid.UUID(busy),
    )
    assert [(r["kind"], json.loads(r["data"])["via"]) for r in rows] == [
        ("alert_acknowledged", "cli"),
        ("alert_resolved", "cli"),
    ]
    (row,) = sql(
        database, "SELECT status, acknowledged_by FROM alerts WHERE id = $1", uuid.UUID(busy)
    )
    assert tuple(row) == ("resolved", "alice")


def test_unknown_alerts_and_bad_ids_are_usage_errors(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = uuid.uuid4()
    for command in ("show", "ack", "resolve", "escalate"):
        code, out, err = cli(capsys, "alerts", command, str(missing), "--dsn", database)
        assert (code, out, err) == (EXIT_USAGE, "", f"error: no alert {missing}\n"), command
    code, _, err = cli(capsys, "alerts", "ack", "12", "--dsn", database)
    assert (code, err) == (EXIT_USAGE, "error: '12' is not an alert id (a UUID)\n")
    code, _, err = cli(capsys, "alerts", "list")
    assert (code, err) == (EXIT_USAGE, "error: alerts list needs --config or --dsn\n")
    with pytest.raises(SystemExit) as exited:
        main(["alerts", "list", "--dsn", database, "--status", "accepted"])
    assert exited.value.code == EXIT_USAGE
    with pytest.raises(SystemExit) as exited:
        main(["alerts", "list", "--dsn", database, "--limit", "0"])
    assert exited.value.code == EXIT_USAGE
    with pytest.raises(SystemExit) as exited:
        main(["alerts"])
    assert exited.value.code == EXIT_USAGE


def test_a_database_that_is_away_is_a_clear_failure(capsys: pytest.CaptureFixture[str]) -> None:
    dsn = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    code, out, err = cli(capsys, "alerts", "list", "--dsn", dsn)
    assert (code, out) == (EXIT_FAILED, "")
    assert err.startswith("error: database: ")


def test_tokens_add_list_revoke(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "tokens", "add", "grafana", "--scope", "read", "--dsn", database)
    assert code == EXIT_OK
    secret = out.strip()
    assert secret.startswith("crt_") and len(secret) > 40
    assert "shown only now" in err
    code, out, _ = cli(capsys, "tokens", "add", "pager-bot", "--scope", "write", "--dsn", database)
    assert code == EXIT_OK

    rows = sql(database, "SELECT name, token_hash, scope FROM api_tokens ORDER BY name")
    assert [(r["name"], r["scope"]) for r in rows] == [("grafana", "read"), ("pager-bot", "write")]
    assert rows[0]["token_hash"] == hash_token(secret)
    assert all(secret not in str(tuple(r)) for r in rows)

    code, out, _ = cli(capsys, "tokens", "list", "--dsn", database)
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SCOPE", "CREATED", "(UTC)", "LAST", "USED", "STATE"]
    assert lines[1].split()[:2] == ["grafana", "read"]
    assert lines[1].split()[-2:] == ["-", "active"]
    assert secret not in out

    code, out, _ = cli(capsys, "tokens", "revoke", "grafana", "--dsn", database)
    assert (code, out) == (EXIT_OK, "token 'grafana' revoked\n")
    code, _, err = cli(capsys, "tokens", "revoke", "grafana", "--dsn", database)
    assert (code, err) == (EXIT_USAGE, "error: no active token named 'grafana'\n")
    code, out, _ = cli(capsys, "tokens", "list", "--dsn", database, "--json")
    listed = {t["name"]: t for t in json.loads(out)}
    assert listed["grafana"]["revoked_at"] is not None
    assert listed["pager-bot"]["revoked_at"] is None
    assert "secret" not in json.dumps(listed)


def test_tokens_add_refuses_a_taken_name_a_bad_name_or_scope(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "tokens", "add", "ci", "--scope", "read", "--dsn", database)[0] == EXIT_OK
    code, out, err = cli(capsys, "tokens", "add", "ci", "--scope", "write", "--dsn", database)
    assert (code, out, err) == (EXIT_USAGE, "", "error: a token named 'ci' exists\n")
    cli(capsys, "tokens", "revoke", "ci", "--dsn", database)
    code, _, err = cli(capsys, "tokens", "add", "ci", "--scope", "read", "--dsn", database)
    assert (code, err) == (
        EXIT_USAGE,
        "error: a token named 'ci' exists (revoked; names are not reused)\n",
    )
    code, _, err = cli(capsys, "tokens", "add", "two words", "--scope", "read", "--dsn", database)
    assert code == EXIT_USAGE
    assert err.startswith("error: token name 'two words': ")
    with pytest.raises(SystemExit) as exited:
        main(["tokens", "add", "x", "--scope", "admin", "--dsn", database])
    assert exited.value.code == EXIT_USAGE
    assert len(sql(database, "SELECT 1 FROM api_tokens")) == 1
