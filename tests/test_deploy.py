"""What the project ships for a PBX host: the systemd unit with its sysusers/tmpfiles
snippets, and the Asterisk configuration in asterisk/."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ari_controller.cli import EXIT_USAGE, build_parser
from ari_controller.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ASTERISK = ROOT / "asterisk"
UNIT = DEPLOY / "ari-controller.service"

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> Unit:
    """systemd's unit syntax: [Section], Key=Value lines, # and ; comments, repeatable keys."""
    sections: Unit = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"line {number} outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"line {number} is not Key=Value: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit: Unit, section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}: {found}"
    return found[0]


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def test_the_unit_is_a_notify_service_with_watchdog_and_restart(unit: Unit) -> None:
    assert one(unit, "Service", "Type") == "notify"
    watchdog = one(unit, "Service", "WatchdogSec")
    assert 5 <= int(watchdog.removesuffix("s")) <= 120
    assert one(unit, "Service", "Restart") == "on-failure"
    # A configuration the CLI refuses (its usage exit status) is not retried in a loop.
    assert one(unit, "Service", "RestartPreventExitStatus") == str(EXIT_USAGE)
    after = one(unit, "Unit", "After").split()
    assert "asterisk.service" in after and "postgresql.service" in after
    assert one(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    # Stopping must leave time for the drain (30 s) and the final database flush.
    assert int(one(unit, "Service", "TimeoutStopSec")) >= 45


def test_execstart_runs_the_daemon_with_a_config_file_the_cli_accepts(unit: Unit) -> None:
    argv = shlex.split(one(unit, "Service", "ExecStart"))
    assert Path(argv[0]).name == "ari-controller"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    assert args.config == "/etc/ari-controller/config.yaml"
    assert args.log_format == "json"  # journald gets one JSON object per line
    assert args.drain_seconds < int(one(unit, "Service", "TimeoutStopSec"))
    # The configuration is checked before starting, by the same program.
    pre = build_parser().parse_args(shlex.split(one(unit, "Service", "ExecStartPre"))[1:])
    assert pre.command == "check-config" and pre.config == args.config


def test_the_unit_runs_as_a_dedicated_user_with_hardening(unit: Unit) -> None:
    user = one(unit, "Service", "User")
    assert user == "ari-controller"
    for key, expected in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert one(unit, "Service", key) == expected, key
    families = one(unit, "Service", "RestrictAddressFamilies").split()
    # AF_UNIX for $NOTIFY_SOCKET and Postgres' socket, AF_INET(6) for ARI and TCP Postgres.
    assert sorted(families) == ["AF_INET", "AF_INET6", "AF_UNIX"]


def test_the_writable_paths_are_created_for_the_service_user(unit: Unit) -> None:
    writable = one(unit, "Service", "ReadWritePaths").split()
    assert "/var/spool/ari-controller" in writable  # database.spool_dir
    assert "/var/lib/asterisk/sounds/callrouting" in writable  # prompts.cache_dir
    tmpfiles = {
        fields[1]: fields
        for line in (DEPLOY / "ari-controller.tmpfiles").read_text().splitlines()
        if line.strip() and not line.startswith("#")
        for fields in [line.split()]
    }
    user = one(unit, "Service", "User")
    for path in writable:
        kind, _path, _mode, owner, *_ = tmpfiles[path]
        assert kind == "d" and owner == user, path
    sysusers = (DEPLOY / "ari-controller.sysusers").read_text().splitlines()
    assert any(line.split()[:2] == ["u", user] for line in sysusers if line.strip())
    # Asterisk reads the prompts the service writes.
    assert one(unit, "Service", "SupplementaryGroups") == "asterisk"
    assert tmpfiles["/var/lib/asterisk/sounds/callrouting"][4] == "asterisk"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify checks that the programs exist: point them at this checkout's entry point.
    program = Path(sys.executable).parent / "ari-controller"
    if not program.exists():
        pytest.skip("ari-controller entry point not installed next to this Python")
    text = UNIT.read_text().replace("/opt/ari-controller/bin/ari-controller", str(program))
    unit_file = tmp_path / "ari-controller.service"
    unit_file.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit_file)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Unknown" not in output and "ignoring" not in output, output


# ---- asterisk/ ----------------------------------------------------------------------------


def conf_sections(path: Path) -> dict[str, list[str]]:
    """Asterisk config: [section] (templates too) -> its non-comment lines."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"^\[([^\]]+)\]", line)
        if match:
            current = sections.setdefault(match[1], [])
            continue
        current.append(line)
    return sections


def extensions_of(lines: list[str]) -> set[str]:
    return {m[1] for line in lines if (m := re.match(r"exten\s*=>\s*([^,]+),", line))}


def test_every_asterisk_file_is_shipped_and_commented() -> None:
    for name in ("http.conf", "ari.conf", "extensions.conf", "pjsip.conf", "musiconhold.conf"):
        text = (ASTERISK / name).read_text(encoding="utf-8")
        comments = [line for line in text.splitlines() if line.lstrip().startswith(";")]
        assert len(comments) >= 5, f"{name} explains too little"


def test_the_dialplan_enters_the_app_retries_and_falls_back_when_stasis_fails() -> None:
    sections = conf_sections(ASTERISK / "extensions.conf")
    inbound = sections["from-pstn"]
    stasis = next(i for i, line in enumerate(inbound) if "Stasis(" in line)
    # The DID is the first argument: the controller picks the number by it.
    assert "Stasis(${STASIS_APP},${EXTEN})" in inbound[stasis]
    after = " ".join(inbound[stasis + 1 :])
    # FAILED (no controller connected): rung and tried again, then the fallback.
    assert '"${STASISSTATUS}" != "FAILED"' in after
    assert "Ringing()" in after and "Goto(stasis)" in after
    assert "${STASIS_TRY} > ${STASIS_RETRIES}]?fallback,s,1" in after
    assert "fallback" in sections and extensions_of(sections["fallback"]) == {"s"}
    app = next(line for line in sections["globals"] if line.startswith("STASIS_APP"))
    assert app.split("=", 1)[1].strip() == "callrouting"


def test_the_ari_user_and_http_server_match_the_default_configuration() -> None:
    ari = conf_sections(ASTERISK / "ari.conf")
    http = conf_sections(ASTERISK / "http.conf")
    config = load_config(ROOT / "examples" / "demo.yaml")
    user = ari[config.asterisk.username]
    assert "type = user" in user and "read_only = no" in user
    assert "enabled = yes" in http["general"] and "bindport = 8088" in http["general"]
    assert config.asterisk.url.startswith("http://127.0.0.1:8088/ari")


def test_the_trunk_lands_in_from_pstn_and_responders_cannot_dial_out_alone() -> None:
    text = (ASTERISK / "pjsip.conf").read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=\[)", text)
    trunk = next(b for b in blocks if b.startswith("[trunk]") and "type = endpoint" in b)
    assert "context = from-pstn" in trunk and "dtmf_mode = rfc4733" in trunk
    template = next(b for b in blocks if b.startswith("[responder-phone](!)"))
    assert "context = responders-internal" in template
    moh = conf_sections(ASTERISK / "musiconhold.conf")
    assert "default" in moh  # the class numbers use unless they name another


def test_the_scripted_phones_of_the_simulator_exist_in_the_shipped_dialplan() -> None:
    """So examples/demo.yaml drives a real Asterisk with asterisk/extensions.conf as well."""
    sections = conf_sections(ASTERISK / "extensions.conf")
    scripts = yaml.safe_load(
        (ROOT / "ari_controller" / "simulator" / "scripts.yaml").read_text(encoding="utf-8")
    )
    in_dialplan = extensions_of(sections["caller"]) | extensions_of(sections["responders"])
    assert set(scripts) <= in_dialplan, set(scripts) - in_dialplan
    demo = load_config(ROOT / "examples" / "demo.yaml")
    for user in demo.users:
        for contact in user.contacts:
            script, _, context = contact.removeprefix("Local/").partition("@")
            assert script in extensions_of(sections[context]), contact
