"""Signed acknowledge/resolve links in alert e-mails: valid until they expire, and any field
changed, or another secret, breaks them."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest

from ari_controller.alerts.links import check_link, make_link

SECRET = "link-secret-for-tests"
ALERT = "8d1f0c2e-5b7a-4c9e-9f00-0123456789ab"
NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
EXPIRES = NOW + dt.timedelta(hours=24)


def _fields(link: str) -> tuple[str, str, str, str, str]:
    parts = urlsplit(link)
    _, alerts, alert_id, action = parts.path.split("/")
    assert alerts == "alerts"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return alert_id, action, query["user"], query["expires"], query["sig"]


def test_a_link_points_at_the_confirmation_page_and_checks_out() -> None:
    link = make_link("https://oncall.example.com/", ALERT, "acknowledge", "alice", EXPIRES, SECRET)
    assert link.startswith(f"https://oncall.example.com/alerts/{ALERT}/acknowledge?user=alice&")
    alert_id, action, user, expires, sig = _fields(link)
    assert (alert_id, action, user, int(expires)) == (
        ALERT,
        "acknowledge",
        "alice",
        int(EXPIRES.timestamp()),
    )
    assert check_link(alert_id, action, user, expires, sig, SECRET, NOW) is None
    # Until the second it expires.
    later = EXPIRES - dt.timedelta(seconds=1)
    assert check_link(alert_id, action, user, expires, sig, SECRET, later) is None


def test_an_expired_link_is_refused() -> None:
    fields = _fields(make_link("https://x.example", ALERT, "resolve", "bob", EXPIRES, SECRET))
    assert check_link(*fields, SECRET, EXPIRES) == "the link has expired"
    assert check_link(*fields, SECRET, EXPIRES + dt.timedelta(days=3)) == "the link has expired"


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, "8d1f0c2e-5b7a-4c9e-9f00-0123456789ac"),  # another alert
        (1, "resolve"),  # another action
        (2, "mallory"),  # another person
        (3, str(int(EXPIRES.timestamp()) + 86400)),  # a later expiry
        (4, "0" * 64),  # a made-up signature
    ],
)
def test_a_link_with_any_field_changed_is_refused(index: int, value: str) -> None:
    fields = list(_fields(make_link("https://x", ALERT, "acknowledge", "alice", EXPIRES, SECRET)))
    fields[index] = value
    assert check_link(*fields, SECRET, NOW) == "the link's signature is not valid"


def test_a_link_signed_with_another_secret_is_refused() -> None:
    fields = _fields(make_link("https://x", ALERT, "acknowledge", "alice", EXPIRES, "other"))
    assert check_link(*fields, SECRET, NOW) == "the link's signature is not valid"
    assert check_link(*fields, "", NOW) == "action links are not enabled on this server"


def test_malformed_fields_are_refused_with_a_reason() -> None:
    alert_id, action, user, expires, sig = _fields(
        make_link("https://x", ALERT, "acknowledge", "alice", EXPIRES, SECRET)
    )
    assert check_link(alert_id, "escalate", user, expires, sig, SECRET, NOW) is not None
    assert check_link(alert_id, action, "", expires, sig, SECRET, NOW) is not None
    assert check_link(alert_id, action, user, "soon", sig, SECRET, NOW) is not None
    with pytest.raises(ValueError):
        make_link("https://x", ALERT, "acknowledge", "alice", EXPIRES, "")
