"""Block and allow patterns: normalised at load, malformed ones rejected, matched on caller IDs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_controller.screening.callerid import caller_id
from ari_controller.screening.lists import match, normalise_pattern


@pytest.mark.parametrize(
    ("pattern", "country", "normalised"),
    [
        ("+4930123456", None, "+4930123456"),
        ("030 123456", "DE", "+4930123456"),
        ("0049 30 123456", "DE", "+4930123456"),
        ("+4930*", None, "+4930*"),
        ("+49 30 *", None, "+4930*"),
        ("030*", "DE", "+4930*"),
        ("004930*", "DE", "+4930*"),
        ("1212*", "US", "+1212*"),
        ("011 44*", "US", "+44*"),
        ("020*", "GB", "+4420*"),
        ("withheld", None, "withheld"),
        ("Withheld", "DE", "withheld"),
        ("anonymous", "DE", "withheld"),
        ("@vip", "DE", "@vip"),
        ("100", "DE", "100"),  # an extension, compared as it is
        ("100", "US", "100"),
        ("2001", None, "2001"),
    ],
)
def test_patterns_are_normalised(pattern: str, country: str | None, normalised: str) -> None:
    assert normalise_pattern(pattern, country) == normalised


@pytest.mark.parametrize(
    ("pattern", "country", "says"),
    [
        ("", "DE", "empty"),
        ("+49*30", "DE", "only at the end"),
        ("+49**", "DE", "only at the end"),
        ("*", "DE", "prefix"),
        ("+*", "DE", "not a phone number, a prefix"),
        ("00*", "DE", "prefix starts with a country code"),
        ("212*", "US", "internationally"),
        ("030*", None, "no country is set"),
        ("abc", "DE", "not a phone number"),
        ("+49 30 12x", "DE", "not a phone number"),
        ("@", "DE", "not a list name"),
        ("@bad name", "DE", "not a list name"),
        ("+4", "DE", "not a possible phone number"),
        ("+4930123456789012345", "DE", "not a possible phone number"),
        ("03012345678901234567", "DE", "not a possible phone number in DE"),
        ("030123456", None, "national number"),
    ],
)
def test_malformed_patterns_say_what_is_wrong(pattern: str, country: str | None, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        normalise_pattern(pattern, country)


LISTS = {"vip": ["+4930999*", "+4989123456"], "bots": ["withheld"]}


@pytest.mark.parametrize(
    ("raw", "patterns", "matched"),
    [
        ("030123456", ["+4930123456"], "+4930123456"),
        ("030123456", ["+4930*"], "+4930*"),
        ("040123456", ["+4930*"], None),
        ("anonymous", ["withheld"], "withheld"),
        ("anonymous", ["+4930*"], None),  # a withheld caller is no number's prefix
        ("", ["@bots"], "@bots: withheld"),
        ("0309991234", ["+4940*", "@vip"], "@vip: +4930999*"),
        ("089 123456", ["@vip"], "@vip: +4989123456"),
        ("089 123457", ["@vip"], None),
        ("100", ["100"], "100"),
        ("100", ["1000"], None),
        ("030123456", ["@missing"], None),
        ("030123456", [], None),
    ],
)
def test_match_names_the_pattern_and_its_list(
    raw: str, patterns: list[str], matched: str | None
) -> None:
    assert match(caller_id(raw, "DE"), patterns, LISTS) == matched


def test_the_first_matching_pattern_is_the_one_named() -> None:
    caller = caller_id("+4930123456", None)
    assert match(caller, ["+49*", "+4930*"], {}) == "+49*"


E164 = st.from_regex(r"\A\+[1-9][0-9]{6,13}\Z")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["+4930123456", "+12125551234", "+442079460000", "+33142685300"]), st.data())
def test_a_number_matches_every_prefix_of_its_own(e164: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=2, max_value=len(e164)))
    caller = caller_id(e164, None)
    pattern = normalise_pattern(e164[:cut] + "*", None)
    assert match(caller, [pattern], {}) == pattern


@settings(max_examples=300, deadline=None)
@given(E164, st.data())
def test_any_e164_caller_matches_its_own_prefix_wildcard(e164: str, data: st.DataObject) -> None:
    # As read: "+20 010..." is Egypt's 010... written with its trunk prefix, +2010...; a
    # number phonenumbers cannot read is compared by its plain form.
    caller = caller_id(e164, None)
    key = caller.key
    cut = data.draw(st.integers(min_value=2, max_value=len(key)))
    pattern = normalise_pattern(key[:cut] + "*", None)
    assert match(caller, [pattern], {}) == pattern
    if caller.e164 is not None:
        assert match(caller, [normalise_pattern(caller.e164, None)], {}) == caller.e164


@settings(max_examples=200, deadline=None)
@given(E164, E164)
def test_a_prefix_matches_only_what_starts_with_it(e164: str, other: str) -> None:
    caller = caller_id(other, None)
    pattern = normalise_pattern(e164 + "*", None)
    assert (match(caller, [pattern], {}) is not None) == caller.key.startswith(e164)
