"""What went wrong talking to ARI: one exception class per answer a caller handles differently.

Asterisk's status codes carry meaning for a controller (see the traces): 404 means the channel,
bridge or playback is already gone; 409 a reused id or a channel not in Stasis; 412 a channel
not yet answered/in Stasis; 422 a channel outside the app; 503 Asterisk still booting.
`AriTimeout` and `AriUnreachable` have no status: Asterisk never answered.
"""

from __future__ import annotations


class AriError(Exception):
    """A REST request to ARI failed. `status` is None when no HTTP answer came back."""

    def __init__(self, status: int | None, method: str, path: str, message: str) -> None:
        super().__init__(f"{method} {path}: {status if status is not None else '-'} {message}")
        self.status = status
        self.method = method
        self.path = path
        self.message = message


class BadRequest(AriError):
    """400: invalid parameters (also `addChannel` with a channel Asterisk does not know)."""


class Unauthorized(AriError):
    """401: wrong ARI user or password."""


class NotFound(AriError):
    """404: the resource is gone (a hung-up channel, a finished playback, a deleted bridge)."""


class Conflict(AriError):
    """409: the id is in use, or the channel is not in a state allowing the operation."""


class PreconditionFailed(AriError):
    """412: the channel is not in Stasis yet (an originate that is still ringing)."""


class UnprocessableEntity(AriError):
    """422: the channel exists but is not in this Stasis application."""


class ServerError(AriError):
    """500 (and other 5xx without a class of their own): Asterisk failed internally."""


class ServiceUnavailable(AriError):
    """503: Asterisk is starting up or shutting down."""


class AriTimeout(AriError):
    """No complete answer within the client's request timeout."""

    def __init__(self, method: str, path: str, message: str) -> None:
        super().__init__(None, method, path, message)


class AriUnreachable(AriError):
    """The connection to Asterisk was refused, reset or closed before an answer."""

    def __init__(self, method: str, path: str, message: str) -> None:
        super().__init__(None, method, path, message)


_BY_STATUS: dict[int, type[AriError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    422: UnprocessableEntity,
    500: ServerError,
    503: ServiceUnavailable,
}


def error_for_status(status: int, method: str, path: str, message: str) -> AriError:
    """The exception for an HTTP error answer; unknown 5xx count as ServerError."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else AriError
    return cls(status, method, path, message)


class NotDriving(AriError):
    """Not sent: this controller no longer holds its application's lease (another one took
    over while it was frozen or cut off), so it must not touch the calls."""
