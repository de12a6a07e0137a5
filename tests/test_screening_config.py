"""Screening in the configuration and on the command line: check-config, hash-pin, explain."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ari_controller.cli import main
from ari_controller.config import ConfigError, parse_config
from ari_controller.screening.pins import hash_pin, verify_pin

ROOT = Path(__file__).resolve().parent.parent


def pin_4711() -> str:
    return hash_pin("4711", bytes(range(16)))


def base(**screening: Any) -> dict[str, Any]:
    return {
        "screening": {"default_country": "DE", "lists": {"customers": ["089*", "+4930999*"]}},
        "users": [{"id": "u", "name": "U", "contacts": ["PJSIP/u"]}],
        "escalation_policies": [{"id": "p", "name": "P", "rules": [{"users": ["u"]}]}],
        "numbers": [
            {
                "did": "+4930123456",
                "name": "Ops",
                "routes": [{"label": "ops", "policy": "p"}],
                "screening": screening,
            },
            {"did": "100", "name": "Internal", "routes": [{"label": "ops", "policy": "p"}]},
        ],
    }


def problems_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "test", ROOT)
    return caught.value.problems


def test_a_number_without_screening_is_open_as_before() -> None:
    config = parse_config(base(), "test", ROOT)
    screening = config.numbers[1].screening
    assert screening.block == [] and not screening.allow_only and screening.rate_limit is None
    assert screening.repeat_calls is None  # off unless asked for
    assert config.country_of(config.numbers[1]) == "DE"


def test_patterns_are_normalised_with_the_numbers_country() -> None:
    config = parse_config(
        base(
            block=["0171 2345678", "030*"],
            allow=["@customers"],
            repeat_calls={"window_minutes": 30},
        ),
        "test",
        ROOT,
    )
    screening = config.numbers[0].screening
    assert screening.country == "DE"
    assert screening.block == ["+491712345678", "+4930*"]
    assert config.screening.lists == {"customers": ["+4989*", "+4930999*"]}
    assert screening.repeat_calls is not None and screening.repeat_calls.window_minutes == 30
    # A number of another country reads its national forms with its own.
    data = base(country="gb", block=["020 7946 0000"])
    assert parse_config(data, "test", ROOT).numbers[0].screening.block == ["+442079460000"]


def test_check_config_names_each_bad_item_by_its_path() -> None:
    data = base(
        block=["+49**", "abc", "212*"],
        allow=["030123456"],
        country="XX",
        pin={"pins": [{"label": "A", "hash": "4711"}, {"label": "B", "pin": "4711"}]},
        rate_limit={"calls": 0, "minutes": 10},
        flood={"new_calls_per_minute": 5, "action": "message"},
    )
    data["screening"]["default_country"] = "Germany"
    data["screening"]["lists"]["bad list"] = ["+49*"]
    data["screening"]["lists"]["nested"] = ["@customers"]
    problems = dict(problems_of(data))
    assert "'+49**'" in problems["numbers[0].screening.block[0]"]
    assert "not a phone number" in problems["numbers[0].screening.block[1]"]
    assert "internationally" in problems["numbers[0].screening.block[2]"]
    assert "national number" in problems["numbers[0].screening.allow[0]"]  # no country left
    assert "ISO 3166" in problems["numbers[0].screening.country"]
    assert "ISO 3166" in problems["screening.default_country"]
    assert "written in clear" in problems["numbers[0].screening.pin.pins[0].hash"]
    assert "never written in clear" in problems["numbers[0].screening.pin.pins[1]"]
    assert "numbers[0].screening.rate_limit.calls" in problems
    assert "needs the text" in problems["numbers[0].screening.flood"]
    assert "not a list name" in problems["screening.lists.bad list"]
    assert "another list" in problems["screening.lists.nested[0]"]


def test_unknown_lists_and_malformed_hashes_are_errors() -> None:
    problems = dict(problems_of(base(allow=["@customers", "@vips"])))
    assert problems == {
        "numbers[0].screening.allow[1]": "unknown list '@vips' (screening.lists has @customers)"
    }
    bad_hash = pin_4711()[:-1]
    problems = dict(problems_of(base(pin={"pins": [{"label": "A", "hash": bad_hash}]})))
    assert "malformed" in problems["numbers[0].screening.pin.pins[0].hash"]
    problems = dict(problems_of(base(pin={"required": True})))
    assert "at least one PIN" in problems["numbers[0].screening.pin"]
    problems = dict(problems_of(base(allow_only=True, not_allowed={"action": "pin"})))
    assert "needs PINs" in problems["numbers[0].screening"]


def test_the_same_did_in_another_form_is_there_twice() -> None:
    data = base()
    data["numbers"][1]["did"] = "030 123456"
    assert problems_of(data) == [("numbers[1].did", "'030 123456' is also numbers[0]")]
    data["screening"]["default_country"] = "AT"  # Vienna's 030 123456 is another number
    parse_config(data, "test", ROOT)


def test_a_number_is_found_by_any_form_the_trunk_sends() -> None:
    data = base()
    data["numbers"].append(
        {"did": "0301234567", "name": "Ops 2", "routes": [{"label": "o", "policy": "p"}]}
    )
    config = parse_config(data, "test", ROOT)
    for dialled in ("+4930123456", "030123456", "030 123456", "004930123456", "4930123456"):
        number = config.number(dialled)
        assert number is not None and number.name == "Ops", dialled
    for dialled in ("0301234567", "+49301234567", "0049301234567"):
        number = config.number(dialled)
        assert number is not None and number.name == "Ops 2", dialled
    internal = config.number("100")
    assert internal is not None and internal.name == "Internal"
    assert config.number("+49100") is None and config.number("0100") is None
    assert config.number("030123458") is None


def test_check_config_cli_reports_paths_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(base(block=["+49*30"], pin={"pins": [{"label": "A", "hash": "1234"}]}))
    )
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "numbers[0].screening.block[0]: '+49*30': '*' is allowed only at the end" in err
    assert "numbers[0].screening.pin.pins[0].hash: this is a PIN written in clear" in err
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(base(pin={"pins": [{"label": "A", "hash": pin_4711()}]})))
    assert main(["check-config", str(good)]) == 0


def test_hash_pin_from_stdin_prints_a_config_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("4711\n"))
    assert main(["hash-pin", "--label", 'ACME "North"']) == 0
    line = capsys.readouterr().out.strip()
    entry = yaml.safe_load(line)[0]
    assert entry["label"] == 'ACME "North"' and verify_pin("4711", entry["hash"])
    # The line is valid where it goes.
    config = parse_config(base(pin={"required": True, "pins": [entry]}), "test", ROOT)
    assert config.numbers[0].screening.pin.pins[0].label == 'ACME "North"'
    monkeypatch.setattr("sys.stdin", io.StringIO("12\n"))
    assert main(["hash-pin"]) == 2
    assert "4 to 12 digits" in capsys.readouterr().err


def test_hash_pin_on_a_terminal_asks_twice_without_echo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["4711", "4711", "4711", "4712"])
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["hash-pin"]) == 0
    assert verify_pin("4711", yaml.safe_load(capsys.readouterr().out)[0]["hash"])
    assert main(["hash-pin"]) == 2
    assert "differ" in capsys.readouterr().err


def explain(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    path = tmp_path / "c.yaml"
    data = base(
        block=["+4917*", "withheld"],
        blocked={"message": "Goodbye."},
        allow=["@customers"],
        rate_limit={"calls": 3, "minutes": 10, "message": "Please wait."},
        flood={"new_calls_per_minute": 20, "action": "voicemail_only"},
        pin={"pins": [{"label": "ACME", "hash": pin_4711()}]},
    )
    path.write_text(yaml.safe_dump(data))
    at = "2026-11-24T10:00:00+01:00"
    assert main(["explain", "--config", str(path), "--at", at, "--json", *args]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def test_explain_shows_the_verdict_its_steps_and_its_assumptions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = explain(tmp_path, capsys, "--number", "030 123456", "--caller-id", "0171 2345678")
    assert report["outcome"] == "blocked" and report["plan"] == [] and report["greeting"] == ""
    screening = report["screening"]
    assert screening["caller"]["e164"] == "+491712345678"
    assert screening["assumptions"] == {"caller_calls": 1, "flood": False, "pin": "not entered"}
    assert screening["verdict"]["message"] == "Goodbye."
    assert screening["verdict"]["steps"][-1] == {
        "check": "block",
        "outcome": "matched",
        "rule": "+4917*",
    }
    # A first call from an unknown caller goes on to the menu and the plan.
    report = explain(tmp_path, capsys, "--number", "+4930123456", "--caller-id", "030 555555")
    assert report["outcome"] == "call" and report["screening"]["verdict"]["action"] == "menu"
    # The fourth call in the window: asked for a PIN, then as the PIN goes.
    args = ("--number", "+4930123456", "--caller-id", "030 555555", "--caller-calls", "4")
    report = explain(tmp_path, capsys, *args)
    assert report["outcome"] == "ask_pin" and report["screening"]["verdict"]["attempts"] == 3
    report = explain(tmp_path, capsys, *args, "--pin", "4711")
    assert report["outcome"] == "call" and report["screening"]["verdict"]["label"] == "ACME"
    report = explain(tmp_path, capsys, *args, "--pin", "1234")
    assert report["outcome"] == "rate_limited"
    # A flood: the number has PINs, so a PIN is asked first; a wrong one gets the flood
    # action (voicemail), a customer on the allow list the menu.
    flooded = ("--number", "+4930123456", "--caller-id", "030 555555", "--flood")
    assert explain(tmp_path, capsys, *flooded)["outcome"] == "ask_pin"
    report = explain(tmp_path, capsys, *flooded, "--pin", "0000")
    assert report["outcome"] == "flood" and report["screening"]["verdict"]["then"] == "voicemail"
    report = explain(
        tmp_path, capsys, "--number", "+4930123456", "--caller-id", "089 555555", "--flood"
    )
    assert report["outcome"] == "call"
    # Without --caller-id, no screening is worked out.
    report = explain(tmp_path, capsys, "--number", "+4930123456")
    assert report["screening"] is None


def test_explain_in_text_lists_each_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    explain(tmp_path, capsys, "--number", "+4930123456", "--caller-id", "anonymous")
    path = tmp_path / "c.yaml"
    assert (
        main(
            [
                "explain",
                "--config",
                str(path),
                "--number",
                "+4930123456",
                "--caller-id",
                "anonymous",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "Caller ID 'anonymous': withheld" in text
    assert "Assumed: call 1 from this caller in the rate window (--caller-calls)" in text
    assert "  block: matched  [withheld]" in text
    assert "Verdict: blocked, says 'Goodbye.', then hang up" in text
    assert "Caller hears" not in text
    at = "2026-11-24T10:00:00+01:00"
    customer = ("--caller-id", "089 123456", "--pin", "4711", "--at", at)
    assert main(["explain", "--config", str(path), "--number", "+4930123456", *customer]) == 0
    text = capsys.readouterr().out
    assert "allow: matched  [@customers: +4989*]" in text
    assert "(--pin is not used: this caller is not asked for a PIN)" in text
    assert "Caller hears: You have reached Ops." in text
