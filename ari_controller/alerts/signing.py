"""Standard Webhooks 1.0 signatures (https://www.standardwebhooks.com): the three headers a
receiver checks. Pure.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is
`v1,` + base64(HMAC-SHA256(key, content)). A secret written `whsec_<base64>` (the standard's
form) is that base64 decoded; any other secret is used as its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"


class InvalidSecretError(ValueError):
    """The secret is empty, or `whsec_` followed by something that is not base64."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret as configured."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            # Tolerate missing padding, as the standard's own libraries do.
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error as exc:
            raise InvalidSecretError("a whsec_ secret must be base64 after the prefix") from exc
    else:
        key = secret.encode()
    if not key:
        raise InvalidSecretError("the webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for these bytes."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """`webhook-id` (the same on every retry of a delivery), `webhook-timestamp` (unix
    seconds of this attempt) and `webhook-signature`."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
