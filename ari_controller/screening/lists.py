"""Block and allow lists: which caller IDs a pattern names.

A pattern is one of
- a phone number, `+4930123456` (exact; a national form such as `030 123456` is read with the
  number's country when the configuration is loaded and kept as `+4930123456`),
- a prefix wildcard, `+4930*` (only a trailing `*`; `030*` with country DE is `+4930*`),
- `withheld`: callers who withheld their caller ID (`anonymous`, `restricted`, empty, ...),
- `@name`: the shared list `name` from the top-level `screening.lists`,
- an internal extension or other short number that is not a phone number, `100` (exact).

Patterns are normalised once, by `normalise_pattern` (at configuration load); `match` compares
a normalised caller ID with normalised patterns. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ari_controller.screening.callerid import (
    CallerId,
    country_code,
    international_prefix,
    national_prefix,
    to_e164,
)

WITHHELD = "withheld"
LIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SEPARATORS = re.compile(r"[\s\-./()]")
_DIGITS = re.compile(r"^\+?[0-9]+$")
# Extensions are shorter than this; a national number of this length or more is meant as one.
_SHORTEST_NUMBER = 7


def normalise_pattern(pattern: str, country: str | None) -> str:
    """The pattern as `match` compares it; ValueError says what is wrong with a malformed one."""
    text = pattern.strip()
    if not text:
        raise ValueError("an empty pattern")
    if text.lower() in (WITHHELD, "anonymous"):
        return WITHHELD
    if text.startswith("@"):
        name = text[1:]
        if not LIST_NAME.match(name):
            raise ValueError(f"'{pattern}' is not a list name (@ then letters, digits, _ . -)")
        return text
    wildcard = text.endswith("*")
    body = _SEPARATORS.sub("", text[:-1] if wildcard else text)
    if "*" in body:
        raise ValueError(f"'{pattern}': '*' is allowed only at the end (a prefix such as +4930*)")
    if not _DIGITS.match(body):
        raise ValueError(
            f"'{pattern}' is not a phone number, a prefix ending in '*', 'withheld' or an @list"
        )
    if wildcard:
        return _international_prefix(body, pattern, country) + "*"
    e164 = to_e164(body, country)
    if e164 is not None:
        return e164
    if body.startswith("+") or _national_or_international(body, country):
        where = f" in {country.upper()}" if country else ""
        raise ValueError(f"'{pattern}' is not a possible phone number{where}")
    if body.startswith("0") and not country:
        raise ValueError(
            f"'{pattern}' is a national number: set screening.country on the number or"
            " screening.default_country, or write it as +<country code>..."
        )
    # Not a phone number in any form: an extension, compared as it is ("100").
    return body


def _international_prefix(body: str, pattern: str, country: str | None) -> str:
    if body.startswith("+"):
        digits = body[1:]
    else:
        idd = international_prefix(country)
        trunk = national_prefix(country)
        found = re.match(f"(?:{idd})", body) if idd else None
        if found is not None:
            digits = body[found.end() :]
        elif trunk and body.startswith(trunk) and country:
            digits = f"{country_code(country)}{body[len(trunk) :]}"
        else:
            hint = f" (country {country.upper()})" if country else " (no country is set)"
            raise ValueError(
                f"'{pattern}': a prefix is written internationally, +<country code>...*, or"
                f" nationally with the trunk prefix{hint}"
            )
    if not digits or digits[0] == "0":
        raise ValueError(f"'{pattern}': a prefix starts with a country code, e.g. +49*")
    return "+" + digits


def _national_or_international(body: str, country: str | None) -> bool:
    """Whether `body` starts as a phone number of `country` would (trunk or international
    prefix) and is long enough to be meant as one, so a failure to read it is an error rather
    than an extension (US "100" starts with the trunk prefix 1 and is an extension)."""
    if not country or len(body) < _SHORTEST_NUMBER:
        return False
    trunk = national_prefix(country)
    idd = international_prefix(country)
    return bool((trunk and body.startswith(trunk)) or (idd and re.match(f"(?:{idd})", body)))


def list_references(patterns: Sequence[str]) -> list[tuple[int, str]]:
    """(index, name) of each `@name` among `patterns`."""
    return [(i, p[1:]) for i, p in enumerate(patterns) if p.startswith("@")]


def pattern_matches(caller: CallerId, pattern: str) -> bool:
    """Whether one normalised pattern (not an @list) names `caller`."""
    if pattern == WITHHELD:
        return caller.withheld
    if caller.withheld:
        return False
    if pattern.endswith("*"):
        return caller.key.startswith(pattern[:-1])
    return caller.key == pattern


def match(
    caller: CallerId, patterns: Sequence[str], lists: Mapping[str, Sequence[str]]
) -> str | None:
    """The first pattern that names `caller`, as the timeline shows it: the pattern itself
    (`+4930*`), or the shared list and its pattern (`@vip: +4930*`); None when none does."""
    for pattern in patterns:
        if pattern.startswith("@"):
            name = pattern[1:]
            for shared in lists.get(name, ()):
                if not shared.startswith("@") and pattern_matches(caller, shared):
                    return f"{pattern}: {shared}"
        elif pattern_matches(caller, pattern):
            return pattern
    return None
