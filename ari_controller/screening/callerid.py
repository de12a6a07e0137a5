"""Who is calling, in one form: a caller ID as the trunk sent it, normalised to E.164.

Trunks send the same caller as `030 123456`, `004930123456` or `+4930123456` (country DE), and
withheld callers as `anonymous`, `Restricted`, an empty string and more: all of those are one
case here. Caller IDs that are not phone numbers (an internal extension such as `100`, a SIP
user name) are kept as they are. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

# The forms a withheld caller ID arrives in, compared lower-case with everything but letters
# and digits taken out ("Anonymous", "Private Number", "CLID withheld", "out-of-area", ...).
# "P" and "O" are the private and out-of-area markers of North American caller ID.
WITHHELD_WORDS = frozenset(
    {
        "",
        "anonymous",
        "anonymouscaller",
        "anon",
        "restricted",
        "private",
        "privatenumber",
        "privatecaller",
        "unknown",
        "unknowncaller",
        "unknownnumber",
        "unavailable",
        "notavailable",
        "withheld",
        "numberwithheld",
        "clidwithheld",
        "clirestricted",
        "blocked",
        "nocallerid",
        "nocli",
        "outofarea",
        "presentationrestricted",
        "p",
        "o",
    }
)
# Hosts that stand for "no caller ID" in SIP URIs (RFC 3323: sip:anonymous@anonymous.invalid).
_ANONYMOUS_HOSTS = ("anonymous.invalid",)
# What people and trunks put between digits; taken out before a number is read.
_SEPARATORS = re.compile(r"[\s\-./()\[\]]")
_NUMBERISH = re.compile(r"^\+?[0-9]+$")
_MAX_RAW = 256


@dataclass(frozen=True, slots=True)
class CallerId:
    """A caller ID: as the trunk sent it, its E.164 form when it is a phone number, and
    whether the caller withheld it."""

    raw: str
    e164: str | None
    withheld: bool
    # The caller's number or name as read from `raw` (a SIP URI's user part, separators
    # taken out): what identifies a caller that is not a phone number, e.g. "100".
    plain: str = ""

    @property
    def key(self) -> str:
        """What the caller is known by: the E.164 form, "withheld", or the plain form."""
        if self.withheld:
            return "withheld"
        if self.e164 is not None:
            return self.e164
        return self.plain or self.raw.strip()


def caller_id(raw: str | None, country: str | None) -> CallerId:
    """`raw` as the trunk sent it (`+4930...`, `030...`, `"Name" <sip:+4930...@host>`,
    `anonymous`, ...), read with `country` (ISO 3166 alpha-2) for national forms."""
    text = (raw or "")[:_MAX_RAW]
    user, host = _user_part(text)
    if _withheld_word(user) or _withheld_word(text) or host in _ANONYMOUS_HOSTS:
        return CallerId(raw=text, e164=None, withheld=True, plain="")
    return CallerId(raw=text, e164=to_e164(user, country), withheld=False, plain=_plain(user))


def dialled_matches(configured_did: str, dialled: str, country: str | None) -> bool:
    """Whether the number dialled (the DID as the trunk sends it) is `configured_did`.

    Both are read as phone numbers with `country`; `030 1234567`, `+49301234567` and
    `004930 1234567` are one number in DE. A DID that is not a phone number (an extension
    such as "100") matches only itself. A trunk that sends E.164 without its "+"
    (`49301234567`) matches too."""
    if configured_did == dialled:
        return True
    configured = did_key(configured_did, country)
    wanted = did_key(dialled, country)
    if configured == wanted:
        return True
    digits = _plain(_user_part(dialled)[0])
    return configured.startswith("+") and digits.isdigit() and configured[1:] == digits


@lru_cache(maxsize=4096)
def did_key(did: str, country: str | None) -> str:
    """A DID as it is compared: its E.164 form, else its plain form ("100")."""
    user = _user_part(did)[0]
    return to_e164(user, country) or _plain(user)


@lru_cache(maxsize=4096)
def to_e164(text: str, country: str | None) -> str | None:
    """The E.164 form of `text` when it is a phone number, else None (see `_to_e164`).

    Idempotent: a `+` form whose reading would change on a second reading (phonenumbers takes
    a zero after some country codes for a trunk prefix: "+98000001" reads "+9800001", which
    reads "+980001") is kept as written, so a caller ID and the patterns made from it always
    compare alike."""
    found = _to_e164(text, country)
    if found is None or found == _to_e164(found, None):
        return found
    written = "+" + _plain(text).lstrip("+")
    return written if _NUMBERISH.match(written) else found


def _to_e164(text: str, country: str | None) -> str | None:
    """The E.164 form of `text` when it is a phone number, else None.

    International forms (`+...`, or the country's international prefix such as `00` or `011`)
    count when their length is possible for the country code they name. National forms count
    when they are a valid number of `country`, or start with its trunk prefix (`0` in DE, GB,
    FR) and have a possible length: so an internal extension such as "100" or "2001" stays an
    extension, while a number from a range the metadata calls unused (a drama number) is
    still a number."""
    if not text or len(text) > 40:
        return None
    region = country.upper() if country else None
    try:
        parsed = phonenumbers.parse(text, region, keep_raw_input=True)
    except phonenumbers.NumberParseException:
        return None
    source = parsed.country_code_source
    possible = phonenumbers.is_possible_number_with_reason(parsed)
    fully_possible = possible == phonenumbers.ValidationResult.IS_POSSIBLE
    if source in (
        phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_PLUS_SIGN,
        phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_IDD,
    ):
        ok = fully_possible
    elif source == phonenumbers.CountryCodeSource.FROM_NUMBER_WITHOUT_PLUS_SIGN:
        ok = phonenumbers.is_valid_number(parsed)
    else:
        trunk = national_prefix(region)
        ok = phonenumbers.is_valid_number(parsed) or (
            fully_possible and trunk is not None and _plain(text).startswith(trunk)
        )
    if not ok:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def national_prefix(country: str | None) -> str | None:
    """The trunk prefix of national numbers in `country` ("0" in DE, "1" in US), if any."""
    metadata = _metadata(country)
    return metadata.national_prefix if metadata is not None else None


def international_prefix(country: str | None) -> str | None:
    """The regular expression of `country`'s international prefix ("00", "011"), if any."""
    metadata = _metadata(country)
    return metadata.international_prefix if metadata is not None else None


def country_code(country: str) -> int:
    """The calling code of `country` (49 for DE); 0 for a region phonenumbers does not know."""
    return phonenumbers.country_code_for_region(country.upper())


def is_country(country: str) -> bool:
    return country.upper() in phonenumbers.SUPPORTED_REGIONS


def _metadata(country: str | None) -> phonenumbers.PhoneMetadata | None:
    if not country:
        return None
    return phonenumbers.PhoneMetadata.metadata_for_region(country.upper(), None)


def _user_part(text: str) -> tuple[str, str]:
    """(user, host) of a caller ID that may be a SIP URI with a display name:
    `"Name" <sip:+4930123@example.com;user=phone>` gives ("+4930123", "example.com")."""
    value = text.strip()
    if "<" in value and ">" in value.split("<", 1)[1]:
        value = value.split("<", 1)[1].split(">", 1)[0].strip()
    elif value.startswith('"') and value.count('"') >= 2:
        # A display name alone: "Anonymous"
        value = value[1:].split('"', 1)[0]
    lowered = value.lower()
    for scheme in ("sips:", "sip:", "tel:"):
        if lowered.startswith(scheme):
            value = value[len(scheme) :]
            break
    value = value.split(";", 1)[0].split("?", 1)[0]
    user, _, host = value.partition("@")
    return user.strip(), host.strip().lower().split(":", 1)[0]


def _withheld_word(text: str) -> bool:
    return re.sub(r"[^a-z0-9]", "", text.lower()) in WITHHELD_WORDS


def _plain(user: str) -> str:
    """Separators out when the user part reads as a number (`030 123-456` -> `030123456`)."""
    compact = _SEPARATORS.sub("", user)
    return compact if _NUMBERISH.match(compact) else user
