"""What the project ships for a PBX host: the systemd units (one daemon, and a template for
several on one host) with their sysusers/tmpfiles snippets, and the Asterisk configuration in
asterisk/."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ari_controller.cli import EXIT_USAGE, build_parser
from ari_controller.config import load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ASTERISK = ROOT / "asterisk"
UNIT = DEPLOY / "ari-controller.service"
TEMPLATE = DEPLOY / "ari-controller@.service"
SPOOL = "/var/spool/ari-controller"  # database.spool_dir of the plain unit
CONFIG = "/etc/ari-controller/config.yaml"
# The template's instance (%i) is the daemon's failover member: its configuration and spool.
INSTANCE_CONFIG = "/etc/ari-controller/%i.yaml"
INSTANCE_SPOOL = f"{SPOOL}/%i"

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


def config_of(path: Path) -> str:
    """The configuration file the unit's daemon reads."""
    return INSTANCE_CONFIG if path == TEMPLATE else CONFIG


def tmpfiles() -> dict[str, list[str]]:
    return {
        fields[1]: fields
        for line in (DEPLOY / "ari-controller.tmpfiles").read_text().splitlines()
        if line.strip() and not line.startswith("#")
        for fields in [line.split()]
    }


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def template() -> Unit:
    return parse_unit(TEMPLATE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module", params=[UNIT, TEMPLATE], ids=["plain", "template"])
def each_unit(request: pytest.FixtureRequest) -> tuple[Path, Unit]:
    path: Path = request.param
    return path, parse_unit(path.read_text(encoding="utf-8"))


def test_the_unit_is_a_notify_service_with_watchdog_and_restart(
    each_unit: tuple[Path, Unit],
) -> None:
    _, unit = each_unit
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


def test_execstart_runs_the_daemon_with_a_config_file_the_cli_accepts(
    each_unit: tuple[Path, Unit],
) -> None:
    path, unit = each_unit
    argv = shlex.split(one(unit, "Service", "ExecStart"))
    assert Path(argv[0]).name == "ari-controller"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    assert args.config == config_of(path)
    assert args.log_format == "json"  # journald gets one JSON object per line
    assert args.drain_seconds < int(one(unit, "Service", "TimeoutStopSec"))
    # The configuration is checked before starting, by the same program.
    checks = [
        build_parser().parse_args(pre[1:])
        for line in values(unit, "Service", "ExecStartPre")
        for pre in [shlex.split(line)]
        if Path(pre[0]).name == "ari-controller"
    ]
    assert [(c.command, c.config) for c in checks] == [("check-config", args.config)]


def test_the_unit_runs_as_a_dedicated_user_with_hardening(each_unit: tuple[Path, Unit]) -> None:
    _, unit = each_unit
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
    assert SPOOL in writable  # database.spool_dir
    assert "/var/lib/asterisk/sounds/callrouting" in writable  # prompts.cache_dir
    created = tmpfiles()
    user = one(unit, "Service", "User")
    for path in writable:
        kind, _path, _mode, owner, *_ = created[path]
        assert kind == "d" and owner == user, path
    sysusers = (DEPLOY / "ari-controller.sysusers").read_text().splitlines()
    assert any(line.split()[:2] == ["u", user] for line in sysusers if line.strip())
    # Asterisk reads the prompts the service writes.
    assert one(unit, "Service", "SupplementaryGroups") == "asterisk"
    assert created["/var/lib/asterisk/sounds/callrouting"][4] == "asterisk"


# ---- the template: several daemons on one host ---------------------------------------------


def expected_template(unit: Unit) -> Unit:
    """The plain unit as the template must read: every line the same (hardening included)
    but the daemon's configuration file, its spool and the description, which name the
    instance, and a first ExecStartPre that creates the instance's spool."""
    install = f"+/usr/bin/install -d -m 0750 -o ari-controller -g ari-controller {INSTANCE_SPOOL}"
    expected: Unit = {}
    for section, lines in unit.items():
        out = expected.setdefault(section, [])
        for key, value in lines:
            if key == "Description":
                value = value.replace("ari-controller:", "ari-controller %i:", 1)
            elif key in ("ExecStartPre", "ExecStart"):
                value = value.replace(CONFIG, INSTANCE_CONFIG)
            elif key == "ReadWritePaths":
                value = " ".join(INSTANCE_SPOOL if p == SPOOL else p for p in value.split())
            if key == "ExecStartPre" and ("ExecStartPre", install) not in out:
                out.append(("ExecStartPre", install))
            out.append((key, value))
    return expected


def test_the_template_is_the_plain_unit_but_for_the_instance(unit: Unit, template: Unit) -> None:
    expected = expected_template(unit)
    assert template.keys() == expected.keys()
    for section in expected:
        missing = [line for line in expected[section] if line not in template[section]]
        extra = [line for line in template[section] if line not in expected[section]]
        assert (missing, extra) == ([], []), f"[{section}]: missing {missing}, extra {extra}"
        assert template[section] == expected[section], f"[{section}]: lines in another order"


def test_the_template_paths_name_the_instance(template: Unit) -> None:
    """No two instances share a configuration file or a spool: every path of the daemon's
    own in the template carries %i, and the spool is created for the service user."""
    own = ("/etc/ari-controller/", f"{SPOOL}")
    for section, lines in template.items():
        for key, value in lines:
            for word in value.split():
                if word.startswith(own) and word != "/etc/ari-controller/environment":
                    assert "%i" in word, f"[{section}] {key}: {word}"
    writable = one(template, "Service", "ReadWritePaths").split()
    assert INSTANCE_SPOOL in writable and SPOOL not in writable
    # Created before each start (the sandbox needs it to exist), outside the sandbox (+),
    # owned and moded like the spool directory of the plain unit.
    create = shlex.split(values(template, "Service", "ExecStartPre")[0])
    assert create[0] == "+/usr/bin/install" and create[1] == "-d", create
    options = dict(zip(create[2:-1:2], create[3:-1:2], strict=True))
    kind, _path, mode, owner, group, *_ = tmpfiles()[SPOOL]
    user = one(template, "Service", "User")
    assert kind == "d" and owner == user
    assert options == {"-m": mode, "-o": user, "-g": group}
    assert create[-1] == INSTANCE_SPOOL


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize(
    ("source", "verified"),
    [(UNIT, "ari-controller.service"), (TEMPLATE, "ari-controller@a.service")],
    ids=["plain", "template"],
)
def test_systemd_analyze_verify_accepts_the_unit(
    tmp_path: Path, source: Path, verified: str
) -> None:
    # verify checks that the programs exist: point them at this checkout's entry point.
    program = Path(sys.executable).parent / "ari-controller"
    if not program.exists():
        pytest.skip("ari-controller entry point not installed next to this Python")
    text = source.read_text().replace("/opt/ari-controller/bin/ari-controller", str(program))
    (tmp_path / source.name).write_text(text)
    # A template is verified as one of its instances, loaded from the template's file.
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / verified)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Unknown" not in output and "ignoring" not in output, output


# ---- the README's part on running the pair ------------------------------------------------


def readme_pair_part() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("\n## Active and standby daemons\n") :]
    section = section[: section.index("\n## ", 1)]
    return section[section.index("\n### Running the pair\n") :]


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        out[key] = merged(old, value) if isinstance(old, dict) else value
    return out


def test_the_readme_instance_snippets_fit_the_template() -> None:
    """Each instance's snippet, merged into a whole configuration, is valid, enables failover
    under the instance's name, and keeps its spool where the template lets it write."""
    part = readme_pair_part()
    snippets = {
        match[1]: yaml.safe_load(match[2])
        for match in re.finditer(
            r"```yaml\n\s*# /etc/ari-controller/(\w+)\.yaml\n(.*?)```", part, re.DOTALL
        )
    }
    assert sorted(snippets) == ["a", "b"]
    enabled = re.search(r"systemctl enable --now ((?:ari-controller@\w+ ?)+)", part)
    assert enabled is not None
    assert enabled[1].split() == [f"ari-controller@{name}" for name in snippets]
    base = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text(encoding="utf-8"))
    ports = set()
    for name, snippet in snippets.items():
        config = parse_config(merged(base, snippet), f"README {name}.yaml", ROOT / "examples")
        assert config.failover.enabled and config.failover.member == name
        assert config.database.spool_dir == INSTANCE_SPOOL.replace("%i", name)
        ports.add(config.http.port)
    assert len(ports) == len(snippets)
    assert f"`deploy/{TEMPLATE.name}`" in part and f"`deploy/{UNIT.name}`" in part


def test_the_readme_pair_commands_are_ones_the_cli_accepts() -> None:
    part = " ".join(readme_pair_part().split())
    commands = re.findall(r"`ari-controller ([^`]*)`", part)
    assert {c.split()[0] for c in commands} >= {"handover", "migrate"}
    for command in commands:
        build_parser().parse_args(shlex.split(command))  # SystemExit when it does not parse


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
