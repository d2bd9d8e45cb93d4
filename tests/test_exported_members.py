"""The package root exports exactly the documented public names."""

from __future__ import annotations

import tencent_chat_robots

# The public API as the README documents it; a name added to or dropped from the root
# must be added or dropped here on purpose.
DOCUMENTED = {
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
    "DeadlineExceededError",
    "CustomElem",
    "Endpoint",
    "EndpointSpec",
    "HttpxTransport",
    "InternalServerError",
    "InvalidParameterError",
    "InvalidRequestError",
    "LimitExceededError",
    "MessageRejectedError",
    "Limiter",
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
    "SentGroupMessage",
    "SentMessage",
    "StreamClosedError",
    "StreamError",
    "StreamInterruptedError",
    "StreamReply",
    "RetryDecision",
    "RetryState",
    "TencentChat",
    "TencentChatError",
    "TextElem",
    "Transport",
    "ValidationError",
    "__version__",
    "generate_usersig",
    "retry_decision",
    "verify_usersig",
}
# Importable from the root, but kept out of __all__ so a star import needs no extra.
NEEDS_REDIS = {"LimiterUnavailableError", "RedisRateLimiter"}


def test_the_root_exports_exactly_the_documented_names() -> None:
    assert set(tencent_chat_robots.__all__) == DOCUMENTED
    assert len(tencent_chat_robots.__all__) == len(DOCUMENTED)  # no name listed twice


def test_exported_classes_and_functions_present_themselves_as_the_packages() -> None:
    for name in DOCUMENTED:
        member = getattr(tencent_chat_robots, name)
        if callable(member):
            assert member.__module__ == "tencent_chat_robots", name


def test_star_import_needs_no_optional_extra() -> None:
    assert NEEDS_REDIS.isdisjoint(tencent_chat_robots.__all__)
    assert tencent_chat_robots.RedisRateLimiter.__name__ == "RedisRateLimiter"
    assert tencent_chat_robots.LimiterUnavailableError.__name__ == "LimiterUnavailableError"
