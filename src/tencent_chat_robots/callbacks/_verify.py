"""Is this callback from Tencent Chat, for this app, and fresh? (robot-conversation.md §1)

``Sign = hex(sha256(Token + RequestTime))``, 64 lower-case hex characters, covering
neither the body nor the URL; a ``RequestTime`` (Unix seconds) more than 60 s from now
is refused. Pure functions: the caller brings the clock's reading.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

import attrs

__all__ = ["Refusal", "expected_sign", "verify"]

_SIGN = re.compile(r"[0-9a-f]{64}")
# Twenty digits hold any Unix time a clock will read; more is only work for int().
_REQUEST_TIME = re.compile(r"[0-9]{1,20}")


@attrs.frozen(slots=True)
class Refusal:
    """Why a callback is refused: its HTTP status, the counted reason, a short detail."""

    status: int
    reason: str
    detail: str


def expected_sign(token: str, request_time: str) -> str:
    """The ``Sign`` Tencent Chat sends with ``RequestTime`` for the callback ``token``."""
    return hashlib.sha256((token + request_time).encode()).hexdigest()


def verify(
    query: Mapping[str, str],
    *,
    sdkappid: int,
    token: str | None,
    max_skew: float,
    now: float,
) -> Refusal | None:
    """``None`` if the query authenticates a callback for ``sdkappid``, else the refusal.

    ``token=None`` checks the ``SdkAppid`` only (the console's authentication is off).
    """
    if query.get("SdkAppid") != str(sdkappid):
        return Refusal(403, "sdkappid", "SdkAppid is missing or not this app's")
    if token is None:
        return None
    sign, request_time = query.get("Sign"), query.get("RequestTime")
    if not isinstance(sign, str) or not _SIGN.fullmatch(sign):
        return Refusal(401, "sign", "Sign is missing or not 64 lower-case hex digits")
    if not isinstance(request_time, str) or not _REQUEST_TIME.fullmatch(request_time):
        return Refusal(401, "request_time", "RequestTime is missing or not decimal seconds")
    # Constant time: a forger must not learn the expected sign byte by byte.
    if not hmac.compare_digest(sign, expected_sign(token, request_time)):
        return Refusal(401, "sign", "Sign does not match")
    if not abs(int(request_time) - now) <= max_skew:
        return Refusal(401, "request_time", "RequestTime is outside the allowed window")
    return None
