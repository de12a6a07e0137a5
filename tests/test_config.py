"""Configuration: the example is valid, and every error is reported by its path."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from ari_controller.cli import main
from ari_controller.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"


def example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def write_config(tmp_path: Path, data: dict[str, Any], name: str) -> Path:
    """A config file in tmp_path, with the example's calendar beside it."""
    (tmp_path / "examples").mkdir(exist_ok=True)
    shutil.copytree(
        ROOT / "examples" / "calendars", tmp_path / "examples" / "calendars", dirs_exist_ok=True
    )
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def problems_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "test", ROOT)
    return caught.value.problems


@pytest.mark.parametrize("path", [EXAMPLE, ROOT / "examples" / "demo.yaml"])
def test_shipped_configs_are_valid(path: Path) -> None:
    config = load_config(path)
    assert config.numbers and config.escalation_policies


def test_unknown_policy_is_named_by_its_path() -> None:
    data = example()
    data["numbers"][0]["routes"][1]["policy"] = "dba2"
    assert ("numbers[0].routes[1].policy", "unknown escalation policy 'dba2'") in problems_of(data)


def test_every_error_is_listed_not_just_the_first() -> None:
    data = example()
    data["numbers"][0]["routes"][0]["digit"] = "12"
    data["numbers"][1]["responders"] = {"ring_timeout_s": -1}
    data["asterisk"]["surprise"] = True
    paths = [p for p, _ in problems_of(data)]
    assert "numbers[0].routes[0].digit" in paths
    assert "numbers[1].responders.ring_timeout_s" in paths
    assert "asterisk.surprise" in paths


def test_references_inside_the_oncall_model_are_checked() -> None:
    data = example()
    data["schedules"][0]["layers"][0]["members"][1] = "mallory"
    data["escalation_policies"][0]["rules"][1]["users"] = ["nobody"]
    problems = dict(problems_of(data))
    assert any("mallory" in m for m in problems.values())
    assert any("nobody" in m for m in problems.values())


def test_duplicate_dids_and_digits_are_rejected() -> None:
    data = example()
    data["numbers"][1]["did"] = data["numbers"][0]["did"]
    assert any(p == "numbers[1].did" for p, _ in problems_of(data))
    data = example()
    for route in data["numbers"][0]["routes"]:
        route["digit"] = "4"
    assert any("share the digit" in m for _, m in problems_of(data))


def test_bad_alert_settings_are_named_by_their_path() -> None:
    data = example()
    data["alerts"]["public_base_url"] = "hotline.example.com"
    data["alerts"]["destinations"].append({"id": "hook", "type": "webhook", "url": "ftp://x"})
    data["alerts"]["destinations"].append({"id": "team-chat", "type": "slack", "url_env": "U"})
    data["users"][0]["notify"][0]["after_minutes"] = -1
    data["numbers"][0]["alerts"]["escalate_on"] = ["lunch"]
    problems = problems_of(data)
    paths = {p for p, _ in problems}
    assert "alerts.public_base_url" in paths
    assert "alerts.destinations[1]" in paths  # ftp, and no secret for a webhook
    assert "users[0].notify[0].after_minutes" in paths
    assert "numbers[0].alerts.escalate_on[0]" in paths


def test_a_destination_named_twice_is_rejected() -> None:
    data = example()
    data["alerts"]["destinations"].append({"id": "team-chat", "type": "slack", "url_env": "U"})
    assert ("alerts.destinations[1].id", "'team-chat' is there twice") in problems_of(data)


def test_menu_default_route_must_exist() -> None:
    data = example()
    data["numbers"][0]["menu"]["default"] = {"action": "route", "route": "7"}
    assert any("menu.default.route" in m for _, m in problems_of(data))


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    data = example()
    monkeypatch.setenv("ARI_PASSWORD", "from-env")
    monkeypatch.setenv("CALLROUTING_DB_PASSWORD", "p@ss/word")
    config = parse_config(copy.deepcopy(data), "test", ROOT)
    assert config.asterisk.resolved_password() == "from-env"
    assert config.database.resolved_dsn() == (
        "postgresql://callrouting:p%40ss%2Fword@127.0.0.1:5432/callrouting"
    )
    # A Postgres cluster (several hosts, the writable one chosen by libpq's rule) and IPv6.
    data["database"]["dsn"] = (
        "postgresql://callrouting@pg1:5432,pg2:5433/callrouting?target_session_attrs=read-write"
    )
    config = parse_config(copy.deepcopy(data), "test", ROOT)
    assert config.database.resolved_dsn() == (
        "postgresql://callrouting:p%40ss%2Fword@pg1:5432,pg2:5433/callrouting"
        "?target_session_attrs=read-write"
    )
    data["database"]["dsn"] = "postgresql://callrouting:old@[::1]:5432/callrouting"
    config = parse_config(copy.deepcopy(data), "test", ROOT)
    assert config.database.resolved_dsn() == (
        "postgresql://callrouting:p%40ss%2Fword@[::1]:5432/callrouting"
    )


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    data = example()
    data["numbers"][0]["routes"][0]["policy"] = "dba-typo"
    bad = write_config(tmp_path, data, "bad.yaml")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "numbers[0].routes[0].policy: unknown escalation policy 'dba-typo'" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("numbers: [\n")
    assert main(["check-config", str(broken)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_a_language_without_sentences_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = example()
    data["numbers"][0]["language"] = "xx"
    path = write_config(tmp_path, data, "lang.yaml")
    assert main(["check-config", str(path)]) == 2
    assert "numbers[0].language" in capsys.readouterr().err
