"""Signed action links in alert e-mails: `<public_base_url>/alerts/<id>/<action>?user=..&
expires=..&sig=..`. Pure: no I/O, no clock (the caller says what time it is).

The signature is hex HMAC-SHA256, keyed with the link secret, over every field of the link
(alert id, action, user, expiry in unix seconds), so changing any of them breaks it. A link
does nothing by itself: it opens a confirmation page on the daemon, whose button POSTs the
same fields (a mail scanner fetching the link acknowledges nothing).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Literal
from urllib.parse import quote, urlencode

LinkAction = Literal["acknowledge", "resolve"]
LINK_ACTIONS: tuple[LinkAction, ...] = ("acknowledge", "resolve")
_VERSION = "v1"


def _signature(alert_id: str, action: str, user_id: str, expires: int, secret: str) -> str:
    content = "\n".join((_VERSION, alert_id.lower(), action, user_id, str(expires)))
    return hmac.new(secret.encode(), content.encode(), hashlib.sha256).hexdigest()


def make_link(
    base_url: str,
    alert_id: str,
    action: LinkAction,
    user_id: str,
    expires_at: dt.datetime,
    secret: str,
) -> str:
    """The link that lets `user_id` confirm `action` on the alert until `expires_at`."""
    if not secret:
        raise ValueError("the link secret is empty")
    expires = int(expires_at.timestamp())
    query = urlencode(
        {
            "user": user_id,
            "expires": str(expires),
            "sig": _signature(str(alert_id), action, user_id, expires, secret),
        }
    )
    path = f"/alerts/{quote(str(alert_id).lower(), safe='')}/{action}"
    return f"{base_url.rstrip('/')}{path}?{query}"


def check_link(
    alert_id: str,
    action: str,
    user_id: str,
    expires: str | int,
    signature: str,
    secret: str,
    now: dt.datetime,
) -> str | None:
    """Why a link's fields may not act (a short reason for the person), or None when they
    are signed with `secret` and not expired at `now`."""
    if not secret:
        return "action links are not enabled on this server"
    if action not in LINK_ACTIONS:
        return f"'{action}' is not an action of a link"
    if not user_id:
        return "the link names no person"
    try:
        expires_at = int(expires)
    except (TypeError, ValueError):
        return "the link has no valid expiry"
    expected = _signature(str(alert_id), action, user_id, expires_at, secret)
    # Constant time: the comparison tells nothing about how much of a guess was right.
    if not hmac.compare_digest(expected.encode(), str(signature).strip().lower().encode()):
        return "the link's signature is not valid"
    if now.timestamp() >= expires_at:
        return "the link has expired"
    return None
