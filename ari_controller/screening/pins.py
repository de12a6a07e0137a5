"""PINs: hashed for the configuration, checked on a call.

A PIN is 4 to 12 digits. The configuration holds only its scrypt hash (stdlib hashlib), as a
self-describing string `scrypt$<n>$<r>$<p>$<salt base64>$<hash base64>` printed by
`ari-controller hash-pin`. The cost is chosen for a call flow: one check takes a few tens of
milliseconds (run it off the event loop), so a caller does not wait on it. A hash does not make a
4-digit PIN hard to guess offline (there are only 10,000); it keeps PINs out of plain sight in
the configuration, its backups and its reviews. What protects a PIN on the phone is the limit
on attempts. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

SCHEME = "scrypt"
# scrypt costs: n=2**12, r=8 takes 4 MiB and 10-35 ms on one core of the project's machines.
COST_N = 2**12
COST_R = 8
COST_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
PIN_FORMAT = re.compile(r"^[0-9]{4,12}$")
# What a configured hash may ask for, so no configuration can make one check take seconds.
_MAX_N = 2**16
_MAX_R = 16
_MAX_P = 4


class PinEntry(Protocol):
    """One PIN of a number: the label the responder hears, and the PIN's hash."""

    @property
    def label(self) -> str: ...

    @property
    def hash(self) -> str: ...


E = TypeVar("E", bound=PinEntry)


@dataclass(frozen=True, slots=True)
class PinHash:
    """A parsed hash string."""

    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def __str__(self) -> str:
        salt = base64.b64encode(self.salt).decode("ascii")
        digest = base64.b64encode(self.digest).decode("ascii")
        return f"{SCHEME}${self.n}${self.r}${self.p}${salt}${digest}"


def check_pin_format(pin: str) -> str:
    """`pin` when it is 4 to 12 digits; ValueError otherwise."""
    if not PIN_FORMAT.match(pin):
        raise ValueError("a PIN is 4 to 12 digits")
    return pin


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """The configuration's form of `pin` (a random salt unless one is given)."""
    check_pin_format(pin)
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = _scrypt(pin, salt, COST_N, COST_R, COST_P, HASH_BYTES)
    return str(PinHash(COST_N, COST_R, COST_P, salt, digest))


def parse_pin_hash(text: str) -> PinHash:
    """The parts of a hash string; ValueError says what is wrong with a malformed one."""
    if PIN_FORMAT.match(text.strip()):
        raise ValueError(
            "this is a PIN written in clear: put the line `ari-controller hash-pin` prints"
        )
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise ValueError(
            "not a PIN hash (scrypt$<n>$<r>$<p>$<salt>$<hash>, as `ari-controller hash-pin`"
            " prints it)"
        )
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("a malformed PIN hash (its costs or base64 parts)") from None
    if n < 2 or n > _MAX_N or n & (n - 1) or not 1 <= r <= _MAX_R or not 1 <= p <= _MAX_P:
        raise ValueError(
            f"PIN hash costs out of range (n a power of 2 up to {_MAX_N}, r up to {_MAX_R},"
            f" p up to {_MAX_P})"
        )
    if len(salt) < 8 or not 16 <= len(digest) <= 64:
        raise ValueError("a PIN hash with too short a salt or hash")
    return PinHash(n, r, p, salt, digest)


def verify_pin(entered: str, hashed: str) -> bool:
    """Whether `entered` is the PIN of `hashed` (a constant-time comparison)."""
    parsed = parse_pin_hash(hashed)
    candidate = _scrypt(entered, parsed.salt, parsed.n, parsed.r, parsed.p, len(parsed.digest))
    return hmac.compare_digest(candidate, parsed.digest)


def check_pin(entered: str, pins: Sequence[E]) -> E | None:
    """The entry whose PIN `entered` is, or None.

    Every entry is checked, whichever matches, so the time taken does not tell which (or
    whether one) did; that time grows with the number of PINs (one scrypt each). Input that
    is not 4-12 digits matches nothing and is not hashed."""
    if not PIN_FORMAT.match(entered):
        return None
    found: E | None = None
    for entry in pins:
        try:
            ok = verify_pin(entered, entry.hash)
        except ValueError:
            ok = False  # check-config rejects such a hash; a call never matches it
        if ok and found is None:
            found = entry
    return found


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        pin.encode("ascii", "replace"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=length,
        maxmem=256 * n * r * p + 2**20,
    )
