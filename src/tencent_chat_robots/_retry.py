"""When to try a failed call again, and after how long: a pure function of the error.

Kept free of I/O and state so it can be read, tested and replaced on its own; the
request loop in ``_base_client`` only asks it.
"""

from __future__ import annotations

import random

import attrs

from ._constants import INITIAL_RETRY_DELAY, MAX_RETRY_DELAY, RATE_LIMITED_RETRY_DELAY
from ._exceptions import APIConnectionError, APIError, BadResponseError, RateLimitError

__all__ = ["RetryDecision", "retry_decision"]

USERSIG_EXPIRED = 70001


@attrs.frozen(slots=True)
class RetryDecision:
    """``retry`` says whether to try again; ``delay`` is the pause before it, in seconds."""

    retry: bool
    delay: float = 0.0


_GIVE_UP = RetryDecision(False)


def backoff(
    attempt: int, *, base: float = INITIAL_RETRY_DELAY, cap: float = MAX_RETRY_DELAY
) -> float:
    """Exponential backoff, jittered over its upper half: ``attempt`` counts from 1."""
    ceiling: float = min(cap, base * 2.0 ** (attempt - 1))
    return ceiling * (0.5 + random.random() / 2)


def retry_decision(error: BaseException, attempt: int, *, can_renew_usersig: bool) -> RetryDecision:
    """Decide about ``error`` raised by try number ``attempt`` (1 = the first call).

    Transient faults (internal errors, dropped connections, time-outs, gateway pages)
    are retried with backoff; a rate-limit refusal after at least a second. An expired
    UserSig is retried at once when the client can sign a fresh one. Anything else is
    final: a request the server rejected would only be rejected again.
    """
    if isinstance(error, APIError):
        if error.code == USERSIG_EXPIRED:
            return RetryDecision(True) if can_renew_usersig else _GIVE_UP
        if isinstance(error, RateLimitError):
            return RetryDecision(True, RATE_LIMITED_RETRY_DELAY + backoff(attempt))
        return RetryDecision(True, backoff(attempt)) if error.retryable else _GIVE_UP
    if isinstance(error, (APIConnectionError, BadResponseError)) and error.retryable:
        return RetryDecision(True, backoff(attempt))
    return _GIVE_UP
