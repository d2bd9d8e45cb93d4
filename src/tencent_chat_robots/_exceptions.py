"""The exception hierarchy and the table that maps vendor error codes onto it."""

from __future__ import annotations

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadResponseError",
    "InternalServerError",
    "InvalidParameterError",
    "InvalidRequestError",
    "LimitExceededError",
    "NotFoundError",
    "NotRoomMemberError",
    "PermissionDeniedError",
    "RateLimitError",
    "TencentChatError",
    "ValidationError",
    "error_class_for",
]


class TencentChatError(Exception):
    """Base of every exception the SDK raises."""


class ValidationError(TencentChatError, ValueError):
    """An argument broke a documented rule; nothing was sent."""


class APIConnectionError(TencentChatError):
    """The request did not complete: connection refused, reset or dropped."""

    retryable = True

    def __init__(self, message: str, *, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint


class APITimeoutError(APIConnectionError):
    """No complete answer arrived within the timeout."""


class BadResponseError(TencentChatError):
    """The server answered with something other than the documented JSON envelope.

    ``excerpt`` is the start of the body, printable and short, for diagnosis.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        excerpt: str = "",
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.excerpt = excerpt
        self.endpoint = endpoint

    @property
    def retryable(self) -> bool:
        """Gateway failures (502/503/504) are transient; anything else is not."""
        return self.status_code in (502, 503, 504)


class APIError(TencentChatError):
    """The server answered ``ErrorCode != 0``."""

    retryable = False

    def __init__(
        self,
        code: int,
        info: str,
        *,
        request_id: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.code = code
        self.info = info
        self.request_id = request_id
        self.endpoint = endpoint
        where = f" from {endpoint}" if endpoint else ""
        rid = f" (request id {request_id})" if request_id else ""
        super().__init__(f"error {code}{where}: {info or 'no error info'}{rid}")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, info={self.info!r}, "
            f"request_id={self.request_id!r}, endpoint={self.endpoint!r})"
        )


class InternalServerError(APIError):
    """A transient failure inside Tencent's service; retried automatically."""

    retryable = True


class RateLimitError(APIError):
    """The server refused the call for frequency; retried after a longer pause."""

    retryable = True


class AuthenticationError(APIError):
    """The admin account, SDKAppID or UserSig was not accepted."""


class PermissionDeniedError(APIError):
    """The caller lacks the right (admin only, edition, IP allow-list...)."""


class InvalidParameterError(APIError):
    """A field was missing or broke the protocol."""


class InvalidRequestError(APIError):
    """The request was refused as a whole (bad command, robot quota reached...)."""


class NotFoundError(APIError):
    """The room or group does not exist, or was dismissed."""


class NotRoomMemberError(APIError):
    """The account is not a member of the room."""


class LimitExceededError(APIError):
    """A count limit was reached (robots per room, accounts per app)."""


_CODES: dict[int, type[APIError]] = {}


def _register(cls: type[APIError], *codes: int) -> None:
    for code in codes:
        _CODES[code] = cls


# Codes from the five robot pages plus the common REST codes (60000-79999)
# that an admin call can meet.
_register(InternalServerError, 10002, 100001, 40006, 60008, 70169, 70500)
_register(RateLimitError, 60007, 60011, 60018, 60019, 70050)
_register(
    AuthenticationError,
    10001,
    60004,
    60005,
    60006,
    60012,
    60016,
    60021,
    *range(70001, 70021),
    70052,
)
_register(PermissionDeniedError, 10007, 100006, 60010, 60020, 70403)
_register(InvalidParameterError, 10004, 100002, 10015, 60002, 60003, 70402, 40601)
_register(InvalidRequestError, 10003, 10008)
_register(NotFoundError, 10010, 100004)
_register(NotRoomMemberError, 100005)
_register(LimitExceededError, 100700, 70398)

ERROR_CODES: dict[int, type[APIError]] = dict(_CODES)
"""Every mapped vendor code and the class it raises (a copy, for docs and tests)."""


def error_class_for(code: int) -> type[APIError]:
    """The exception class for a vendor error code; plain :class:`APIError` if unknown."""
    return _CODES.get(code, APIError)
