"""Asyncio SDK for the chatbot (robot) REST APIs of Tencent Cloud Chat.

>>> async with TencentChat(sdkappid=1400000000, secret_key="...") as chat:
...     await chat.create_robot("@RBT#001", nick="Jarvis")
"""

from typing import TYPE_CHECKING

from ._bulk import BulkOutcome, BulkRun
from ._calls import Call
from ._client import TencentChat
from ._constants import DEFAULT_RATE_LIMIT, DOCUMENTED_RATE_LIMIT
from ._elements import CustomElem, OtherElem, TextElem
from ._endpoints import ENDPOINTS, Endpoint, EndpointSpec
from ._exceptions import (
    ERROR_CODES,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadResponseError,
    BulkStoppedError,
    ClientClosedError,
    DeadlineExceededError,
    InternalServerError,
    InvalidParameterError,
    InvalidRequestError,
    LimitExceededError,
    MessageRejectedError,
    NotFoundError,
    NotRoomMemberError,
    PermissionDeniedError,
    QueueTimeoutError,
    RateLimitError,
    RequestError,
    StreamClosedError,
    StreamError,
    StreamInterruptedError,
    TencentChatError,
    ValidationError,
)
from ._health import ClientHealth
from ._limiter import Limiter, PausableLimiter, PriorityLimiter, RateLimiter
from ._logs import configure_from_env as _configure_logging
from ._messages import SentGroupMessage, SentMessage
from ._models import ActionResult, AttemptRecord
from ._options import CallOptions, Priority
from ._regions import Region
from ._retry import RetryDecision, RetryState, retry_decision
from ._stream_reply import StreamReply
from ._transport import AiohttpTransport, HttpxTransport, RawResponse, Transport
from ._usersig import generate_usersig, verify_usersig

if TYPE_CHECKING:
    # Redundant aliases: re-exported for type checkers, imported lazily at run time.
    from ._redis_limiter import LimiterUnavailableError as LimiterUnavailableError
    from ._redis_limiter import RedisRateLimiter as RedisRateLimiter

__version__ = "0.1.0"
"""This package's version."""

_configure_logging()

# Importable from here, but left out of __all__ so that a star import works without the
# optional redis extra.
_NEEDS_REDIS = ("LimiterUnavailableError", "RedisRateLimiter")


def __getattr__(name: str) -> object:
    # Imported on first use so that the package works without the optional redis extra.
    if name in _NEEDS_REDIS:
        from . import _redis_limiter

        return getattr(_redis_limiter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_RATE_LIMIT",
    "DOCUMENTED_RATE_LIMIT",
    "ENDPOINTS",
    "ERROR_CODES",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "ActionResult",
    "AiohttpTransport",
    "AttemptRecord",
    "AuthenticationError",
    "BadResponseError",
    "BulkOutcome",
    "BulkRun",
    "BulkStoppedError",
    "Call",
    "CallOptions",
    "ClientClosedError",
    "ClientHealth",
    "CustomElem",
    "DeadlineExceededError",
    "Endpoint",
    "EndpointSpec",
    "HttpxTransport",
    "InternalServerError",
    "InvalidParameterError",
    "InvalidRequestError",
    "LimitExceededError",
    "Limiter",
    "MessageRejectedError",
    "NotFoundError",
    "NotRoomMemberError",
    "OtherElem",
    "PausableLimiter",
    "PermissionDeniedError",
    "Priority",
    "PriorityLimiter",
    "QueueTimeoutError",
    "RateLimitError",
    "RateLimiter",
    "RawResponse",
    "Region",
    "RequestError",
    "RetryDecision",
    "RetryState",
    "SentGroupMessage",
    "SentMessage",
    "StreamClosedError",
    "StreamError",
    "StreamInterruptedError",
    "StreamReply",
    "TencentChat",
    "TencentChatError",
    "TextElem",
    "Transport",
    "ValidationError",
    "__version__",
    "generate_usersig",
    "retry_decision",
    "verify_usersig",
]

# Public classes and functions present themselves as the package's (in reprs, tracebacks
# and pickles) rather than as a private module's.
for _name in __all__:
    _member = globals()[_name]
    if callable(_member):  # classes and functions
        _member.__module__ = __name__
del _name, _member
