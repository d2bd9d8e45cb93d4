"""The exception hierarchy and the table that maps vendor error codes onto it.

Every exception the SDK raises is a :class:`TencentChatError`::

    TencentChatError
    ├── ValidationError           an argument broke a rule; nothing was sent (also ValueError)
    ├── LimiterUnavailableError   the Redis of the shared limiter did not answer; not sent
    ├── StreamError               a streamed reply ended early: .text, .delivered
    │   ├── StreamInterruptedError  a call failed and the stream cannot go on: .error
    │   └── StreamClosedError       written after the stream ended
    └── RequestError              a call to one endpoint failed: .endpoint, .request_id
        ├── ClientClosedError     the client was closed while the call was pending
        ├── BulkStoppedError      its bulk run was stopped while the call was pending
        ├── QueueTimeoutError     no slot or rate permit within max_wait; not sent
        ├── DeadlineExceededError the whole call did not finish within its deadline
        ├── APIConnectionError    no answer: refused, reset, dropped
        │   └── APITimeoutError   no answer within the timeout
        ├── BadResponseError      not the documented JSON envelope (HTTP 502, HTML...)
        └── APIError              the server answered ErrorCode != 0: .code, .info
            ├── InternalServerError, RateLimitError, AuthenticationError,
            ├── PermissionDeniedError, InvalidParameterError, InvalidRequestError,
            ├── NotFoundError, NotRoomMemberError, LimitExceededError
            └── MessageRejectedError  a message refused: callback, blacklist, mute, text

Whether an error is worth another attempt is decided in ``_retry``, not here.
"""

from __future__ import annotations

__all__ = [
    "ERROR_CODES",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadResponseError",
    "BulkStoppedError",
    "ClientClosedError",
    "DeadlineExceededError",
    "InternalServerError",
    "InvalidParameterError",
    "InvalidRequestError",
    "LimitExceededError",
    "LimiterUnavailableError",
    "MessageRejectedError",
    "NotFoundError",
    "NotRoomMemberError",
    "PermissionDeniedError",
    "QueueTimeoutError",
    "RateLimitError",
    "RequestError",
    "StreamClosedError",
    "StreamError",
    "StreamInterruptedError",
    "TencentChatError",
    "ValidationError",
    "error_class_for",
]


class TencentChatError(Exception):
    """Base of every exception the SDK raises."""

    def __reduce__(self) -> tuple[object, ...]:
        # Exception pickles as cls(*args), which keyword-only fields cannot survive;
        # errors cross process boundaries in bulk jobs, so rebuild from the attributes.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(
    cls: type[TencentChatError], args: tuple[object, ...], state: dict[str, object]
) -> TencentChatError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ValidationError(TencentChatError, ValueError):
    """An argument broke a documented rule; nothing was sent."""


class LimiterUnavailableError(TencentChatError):
    """The Redis behind the shared rate limiter did not answer; nothing was sent.

    Raised instead of sending unpaced, which could exceed the app's limit. Pass
    ``fallback="local"`` to :class:`RedisRateLimiter` to keep working meanwhile. (Here,
    not beside the limiter: code that catches it need not have redis installed.)
    """


class StreamError(TencentChatError):
    """A streamed reply ended before all its text was shown.

    ``text`` is everything written to the stream, ``delivered`` the part the server
    acknowledged (what the user is known to see).
    """

    def __init__(self, message: str, *, text: str = "", delivered: str = "") -> None:
        super().__init__(message)
        self.text = text
        self.delivered = delivered


class StreamInterruptedError(StreamError):
    """A call of a streamed reply failed and the stream cannot be continued.

    ``error`` (also the ``__cause__``) is the call's own error (``None``: the stream's
    calls were cut short, by a cancellation or a closing client's time limit). The text
    after ``delivered`` was not shown, or, after an unanswered call, may not have been.
    """

    def __init__(
        self,
        message: str,
        *,
        error: TencentChatError | None,
        text: str = "",
        delivered: str = "",
    ) -> None:
        super().__init__(message, text=text, delivered=delivered)
        self.error = error


class StreamClosedError(StreamError):
    """Text was written to a streamed reply that had already ended."""


class RequestError(TencentChatError):
    """A call to one endpoint failed.

    ``endpoint`` is its ``service/command`` path; ``request_id`` is the server's
    ``RequestId`` when an answer carried one, and ``random`` the ``random`` query
    parameter of the last attempt sent (``None`` if none was): quote both to Tencent
    support.
    """

    random: int | None = None  # also for an error pickled before this field existed

    def __init__(
        self, message: str, *, endpoint: str | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.request_id = request_id
        self.random: int | None = None

    @property
    def retryable(self) -> bool:
        """Whether the SDK tries a call that failed so again, retries allowing.

        Asked of ``_retry.retry_decision`` itself, for a first attempt of a client that
        can sign a fresh UserSig (so an expired one, 70001, counts as retryable).
        """
        from ._retry import RetryState, retry_decision  # _retry builds on these classes

        state = RetryState(self.endpoint or "", retries_left=1, can_renew_usersig=True)
        return retry_decision(self, state).retry


class ClientClosedError(RequestError):
    """The client was closed before this call could finish.

    ``request_sent`` is true when the server may have acted on the call: a request was
    on the wire when the close's grace ran out, or an earlier attempt went unanswered.
    """

    def __init__(
        self, message: str, *, endpoint: str | None = None, request_sent: bool = False
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.request_sent = request_sent


class BulkStoppedError(RequestError):
    """The bulk run making this call was stopped before the call could finish.

    ``request_sent`` is true when the server may have acted on the call (a request was
    on the wire when the run was cancelled, or an earlier attempt went unanswered);
    false means it certainly did not.
    """

    def __init__(
        self, message: str, *, endpoint: str | None = None, request_sent: bool = False
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.request_sent = request_sent


class QueueTimeoutError(RequestError):
    """An attempt could not start within ``max_wait`` seconds; this attempt was not sent.

    Raised at once when the limiter can tell that the rate permit would come too late
    (``predicted_wait``, in seconds, says when it would have come), otherwise when
    ``max_wait`` has passed (``predicted_wait`` is then ``None``). Never retried.
    ``request_sent`` is true only if an earlier attempt of the same call (a retry's
    predecessor) may have reached the server.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        max_wait: float | None = None,
        predicted_wait: float | None = None,
        request_sent: bool = False,
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.max_wait = max_wait
        self.predicted_wait = predicted_wait
        self.request_sent = request_sent


class DeadlineExceededError(RequestError):
    """The call could not finish within its ``deadline`` (seconds), retries included.

    No attempt starts that could not end in time: the last one's ``timeout`` is cut to
    what is left, and a backoff that would end past the deadline is not slept, so this
    is raised as soon as the call cannot succeed in time. ``request_sent`` is true when
    the server may have acted on the call (an attempt went unanswered); the failure that
    ended the last attempt, if any, is the ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        deadline: float | None = None,
        request_sent: bool = False,
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.deadline = deadline
        self.request_sent = request_sent


class APIConnectionError(RequestError):
    """The request did not complete: connection refused, reset or dropped.

    ``request_sent`` is false only when the connection could not even be made, so the
    server certainly saw nothing; otherwise it may have acted on the request.
    """

    def __init__(
        self, message: str, *, endpoint: str | None = None, request_sent: bool = True
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.request_sent = request_sent


class APITimeoutError(APIConnectionError):
    """No complete answer arrived within the timeout."""


class BadResponseError(RequestError):
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
        super().__init__(message, endpoint=endpoint)
        self.status_code = status_code
        self.excerpt = excerpt


class APIError(RequestError):
    """The server answered ``ErrorCode != 0``: ``code`` and ``info`` are its own."""

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
        where = f" from {endpoint}" if endpoint else ""
        rid = f" (request id {request_id})" if request_id else ""
        message = f"error {code}{where}: {info or 'no error info'}{rid}"
        super().__init__(message, endpoint=endpoint, request_id=request_id)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, info={self.info!r}, "
            f"request_id={self.request_id!r}, endpoint={self.endpoint!r})"
        )


class InternalServerError(APIError):
    """A transient failure inside Tencent's service; retried automatically."""


class RateLimitError(APIError):
    """The server refused the call for frequency; retried after a longer pause."""


class AuthenticationError(APIError):
    """The admin account, SDKAppID or UserSig was not accepted."""


class PermissionDeniedError(APIError):
    """The caller lacks the right (admin only, edition, IP allow-list...), or the room is
    not of the kind the API serves (100006: not a TUILiveKit live room)."""


class InvalidParameterError(APIError):
    """A field was missing or broke the protocol."""


class InvalidRequestError(APIError):
    """The request was refused as a whole (bad command, robot quota reached...)."""


class NotFoundError(APIError):
    """The room, group or account does not exist (or was dismissed, or not imported)."""


class NotRoomMemberError(APIError):
    """The account is not a member of the room."""


class LimitExceededError(APIError):
    """A count limit was reached (robots per room, accounts per app)."""


class MessageRejectedError(APIError):
    """A message was refused as it stands: by the app's before-send callback (20006,
    10016), a blacklist (20007), a friendship check (20009), the sender's mute (20012,
    10017), or as sensitive text (80001). Sending it again would be refused again."""


_CODES: dict[int, type[APIError]] = {}


def _register(cls: type[APIError], *codes: int) -> None:
    for code in codes:
        _CODES[code] = cls


# Codes from the five robot pages plus the common REST codes (60000-79999)
# that an admin call can meet, and the message codes of sendmsg / send_group_msg
# (robot-conversation.md, 2.1 and 2.2).
_register(
    InternalServerError, 10002, 100001, 40006, 60008, 70169, 70500,
    20004, 20005, 90992, 90994, 90995, 91000,
)  # fmt: skip
_register(RateLimitError, 60007, 60011, 60018, 60019, 70050, 10023)
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
_register(PermissionDeniedError, 10007, 100006, 60010, 60020, 70403, 90009)
_register(InvalidParameterError, 10004, 100002, 10015, 60002, 60003, 70402, 40601)
_register(
    InvalidParameterError, 20001, 90001, 90002, 90003, 90005, 90007, 90008, 90010, 90026,
    93000, 80002,
)  # fmt: skip
_register(InvalidRequestError, 10003, 10008)
_register(NotFoundError, 10010, 100004, 20003, 90048, 10019)
_register(MessageRejectedError, 20006, 20007, 20009, 20012, 10016, 10017, 80001)
_register(NotRoomMemberError, 100005)
_register(LimitExceededError, 100700, 70398)

ERROR_CODES: dict[int, type[APIError]] = dict(_CODES)
"""Every mapped vendor code and the class it raises (a copy, for docs and tests)."""


def error_class_for(code: int) -> type[APIError]:
    """The exception class for a vendor error code; plain :class:`APIError` if unknown."""
    return _CODES.get(code, APIError)
