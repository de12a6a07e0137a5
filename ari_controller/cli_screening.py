"""`ari-controller hash-pin`: the line that puts a PIN into a number's `screening.pin.pins`."""

from __future__ import annotations

import argparse
import getpass
import sys

from ari_controller.cli_common import EXIT_OK, EXIT_USAGE
from ari_controller.screening.pins import check_pin_format, hash_pin


def add_screening_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pin = sub.add_parser(
        "hash-pin",
        help="hash a caller PIN for screening.pin.pins (read without echo, or from stdin)",
        description=(
            "Reads a PIN (4-12 digits) without echo from the terminal (twice), or one line from"
            " standard input, and prints the entry for a number's screening.pin.pins."
        ),
    )
    pin.add_argument("--label", help="the PIN's label (the customer's name) for the entry")
    pin.set_defaults(func=cmd_hash_pin)


def _read_pin() -> str | None:
    if sys.stdin.isatty():
        first = getpass.getpass("PIN (4-12 digits): ")
        if getpass.getpass("Again: ") != first:
            print("error: the two PINs differ", file=sys.stderr)
            return None
        return first.strip()
    return sys.stdin.readline().strip()


def cmd_hash_pin(args: argparse.Namespace) -> int:
    pin = _read_pin()
    if pin is None:
        return EXIT_USAGE
    try:
        check_pin_format(pin)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    hashed = hash_pin(pin)
    label = args.label or "LABEL"
    # YAML flow style: the hash holds '$', '/', '+' and '=', all fine in a double-quoted string.
    print(f'- {{label: "{_yaml_text(label)}", hash: "{hashed}"}}')
    return EXIT_OK


def _yaml_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
