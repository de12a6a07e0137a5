"""Caller IDs and dialled numbers to E.164: the forms trunks send, withheld callers as one case."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_controller.screening.callerid import CallerId, caller_id, dialled_matches


@pytest.mark.parametrize(
    ("raw", "country", "e164"),
    [
        # Germany: national, international with 00, E.164, with separators and the (0).
        ("030123456", "DE", "+4930123456"),
        ("030 123456", "DE", "+4930123456"),
        ("004930123456", "DE", "+4930123456"),
        ("+4930123456", "DE", "+4930123456"),
        ("+49 30 123456", "DE", "+4930123456"),
        ("+49 (0)30 123456", "DE", "+4930123456"),
        ("030/123-456", "DE", "+4930123456"),
        ("0171 2345678", "DE", "+491712345678"),
        ("+4930123456", None, "+4930123456"),  # E.164 needs no country
        ("+4930123456", "US", "+4930123456"),  # nor the right one
        # United States: 10 digits, the trunk prefix 1, 011 abroad.
        ("2125551234", "US", "+12125551234"),
        ("12125551234", "US", "+12125551234"),
        ("(212) 555-1234", "US", "+12125551234"),
        ("+1 212 555 1234", None, "+12125551234"),
        ("011 49 30 123456", "US", "+4930123456"),
        # Great Britain: national with 0, a drama number the metadata calls unused.
        ("020 7946 0000", "GB", "+442079460000"),
        ("00442079460000", "GB", "+442079460000"),
        ("07700 900123", "GB", "+447700900123"),
        # SIP forms: a URI with parameters, a display name, tel:.
        ('"Acme" <sip:+4930123456@trunk.example;user=phone>', "DE", "+4930123456"),
        ("<sip:030123456@10.0.0.1:5060>", "DE", "+4930123456"),
        ("sip:+4930123456@trunk.example", None, "+4930123456"),
        ("tel:+4930123456", None, "+4930123456"),
    ],
)
def test_numbers_are_read_as_e164(raw: str, country: str | None, e164: str) -> None:
    caller = caller_id(raw, country)
    assert caller == CallerId(raw=raw, e164=e164, withheld=False, plain=caller.plain)
    assert caller.key == e164


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "anonymous",
        "Anonymous",
        "ANONYMOUS",
        "restricted",
        "Restricted",
        "private",
        "Private Number",
        "unknown",
        "unavailable",
        "withheld",
        "Number withheld",
        "out-of-area",
        "P",
        "O",
        '"Anonymous" <sip:anonymous@anonymous.invalid>',
        "sip:anonymous@anonymous.invalid",
        "<sip:restricted@trunk.example>",
        '"Unknown" <sip:x@anonymous.invalid>',
    ],
)
def test_withheld_forms_are_one_case(raw: str | None) -> None:
    caller = caller_id(raw, "DE")
    assert caller.withheld and caller.e164 is None and caller.key == "withheld"


@pytest.mark.parametrize(
    ("raw", "country", "key"),
    [
        ("100", "DE", "100"),  # an internal extension stays one
        ("2001", "DE", "2001"),
        ("100", "US", "100"),
        ("100", "GB", "100"),
        ("100", None, "100"),
        ("sip:alice@pbx.example", "DE", "alice"),
        ("030123456", None, "030123456"),  # a national form needs a country
    ],
)
def test_what_is_not_a_phone_number_is_kept_as_it_is(
    raw: str, country: str | None, key: str
) -> None:
    caller = caller_id(raw, country)
    assert caller.e164 is None and not caller.withheld and caller.key == key


@pytest.mark.parametrize(
    ("did", "dialled", "country", "matches"),
    [
        ("+49301234567", "+49301234567", "DE", True),
        ("+49301234567", "030 1234567", "DE", True),
        ("+49301234567", "0301234567", "DE", True),
        ("+49301234567", "004930 1234567", "DE", True),
        ("+49301234567", "49301234567", "DE", True),  # E.164 without its "+"
        ("+49301234567", "49301234567", None, True),
        ("030 1234567", "+49301234567", "DE", True),  # the configured form may be national
        ("+49301234567", "0301234568", "DE", False),
        ("+49301234567", "0301234567", "AT", False),  # Vienna's 030... is another number
        ("100", "100", "DE", True),  # extensions stay exact
        ("100", "+49100", "DE", False),
        ("100", "0100", "DE", False),
        ("100", "1000", None, False),
        ("+12125551234", "2125551234", "US", True),
        ("+12125551234", "12125551234", "US", True),
    ],
)
def test_a_did_matches_the_forms_a_trunk_sends(
    did: str, dialled: str, country: str | None, matches: bool
) -> None:
    assert dialled_matches(did, dialled, country) is matches


# Phone numbers of every region phonenumbers knows: the region's example number with its last
# digits replaced, kept when the result is still a valid number.
REGIONS = sorted(
    r for r in phonenumbers.SUPPORTED_REGIONS if phonenumbers.example_number(r) is not None
)


@st.composite
def valid_numbers(draw: st.DrawFn) -> tuple[str, phonenumbers.PhoneNumber]:
    region = draw(st.sampled_from(REGIONS))
    example = phonenumbers.example_number(region)
    assert example is not None
    national = str(example.national_number)
    tail = draw(st.integers(min_value=0, max_value=min(4, len(national) - 1)))
    digits = draw(st.text(alphabet="0123456789", min_size=tail, max_size=tail))
    number = phonenumbers.parse(
        f"+{example.country_code}{national[: len(national) - tail]}{digits}"
    )
    if not phonenumbers.is_valid_number(number):
        number = example
    return region, number


@settings(max_examples=300, deadline=None)
@given(valid_numbers(), st.sampled_from([None, "DE", "US", "GB", "FR"]))
def test_e164_is_read_back_the_same_from_anywhere(
    drawn: tuple[str, phonenumbers.PhoneNumber], country: str | None
) -> None:
    _, number = drawn
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert caller_id(e164, country).e164 == e164


@settings(max_examples=300, deadline=None)
@given(valid_numbers())
def test_national_forms_read_as_their_e164(drawn: tuple[str, phonenumbers.PhoneNumber]) -> None:
    region, number = drawn
    if phonenumbers.region_code_for_number(number) != region:
        return  # a shared country code (+1, +7, +44 ...): the national form names another region
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert caller_id(national, region).e164 == e164


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet="0123456789+ -()", max_size=20),
    st.sampled_from([None, "DE", "US", "GB", "CH"]),
)
def test_normalising_twice_changes_nothing(raw: str, country: str | None) -> None:
    first = caller_id(raw, country)
    if first.e164 is not None:
        again = caller_id(first.e164, country)
        assert again.e164 == first.e164 and again.key == first.key
    else:
        assert caller_id(first.key, country).key == first.key
