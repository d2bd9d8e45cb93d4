"""When to try a failed call again: a pure function of the error and the call so far.

Kept free of I/O and state so it can be read, tested and replaced on its own; the
request loop in ``_base_client`` asks it after every failed attempt and does what it
says. It owns every rule: which failures are transient, how long to back off, the
UserSig renewal, and which answers prove that an earlier, unanswered attempt worked.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import attrs

from ._constants import INITIAL_RETRY_DELAY, MAX_RETRY_DELAY, RATE_LIMITED_RETRY_DELAY
from ._endpoints import ENDPOINTS
from ._exceptions import (
    APIConnectionError,
    APIError,
    BadResponseError,
    InternalServerError,
    RateLimitError,
)

__all__ = ["RetryDecision", "RetryState", "is_transient", "next_state", "retry_decision"]

USERSIG_EXPIRED = 70001
# A gateway in front of the service failed; the service itself may come back.
GATEWAY_STATUSES = frozenset({502, 503, 504})

# Codes that mean "already in the state you asked for", per endpoint (its row's
# ``already_done``). They settle a call as a success only after an attempt whose outcome
# is unknown: that attempt may have done the work, and the retry then finds it done.
# Only room removal needs this; the other endpoints answer a repeat with success
# (create_robot by its page; the others set a state, so the fake, following the pages,
# answers a repeat with OK), so their retries succeed by themselves.
ALREADY_DONE: Mapping[str, frozenset[int]] = {
    spec.path: spec.already_done for spec in ENDPOINTS if spec.already_done
}


# APIs whose repeats the server cannot tell apart (a stream's piece): an attempt that
# may have reached the server is not sent again, or its text could show twice.
NOT_RESENT = frozenset(spec.path for spec in ENDPOINTS if not spec.resend_unanswered)


@attrs.frozen(slots=True)
class RetryState:
    """What the loop knows about a call when one of its attempts has failed.

    ``attempt`` is the number of the try that failed (1 = the first); ``retries_left``
    how many more the caller allows; ``maybe_processed`` whether an earlier try ended
    without an answer after the request may have reached the server.
    """

    endpoint: str
    attempt: int = 1
    retries_left: int = 0
    can_renew_usersig: bool = False
    maybe_processed: bool = False


@attrs.frozen(slots=True)
class RetryDecision:
    """What to do after a failed attempt.

    ``retry``: try again after ``delay`` seconds, first signing a fresh UserSig if
    ``renew_usersig`` (such a retry does not use up one of the caller's). ``settled``:
    stop, the call succeeded after all (see ``ALREADY_DONE``). Neither: raise.
    """

    retry: bool
    delay: float = 0.0
    renew_usersig: bool = False
    settled: bool = False


_GIVE_UP = RetryDecision(False)
_SETTLED = RetryDecision(False, settled=True)
_RENEW = RetryDecision(True, renew_usersig=True)


def backoff(
    attempt: int, *, base: float = INITIAL_RETRY_DELAY, cap: float = MAX_RETRY_DELAY
) -> float:
    """Exponential backoff, jittered over its upper half: ``attempt`` counts from 1."""
    # The exponent is bounded so that a huge max_retries cannot overflow the float.
    ceiling: float = min(cap, base * 2.0 ** min(attempt - 1, 64))
    return ceiling * (0.5 + random.random() / 2)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a fault that another attempt may not meet."""
    if isinstance(error, (InternalServerError, RateLimitError, APIConnectionError)):
        return True
    return isinstance(error, BadResponseError) and error.status_code in GATEWAY_STATUSES


def _outcome_unknown(error: BaseException) -> bool:
    if isinstance(error, APIConnectionError):
        return error.request_sent
    return isinstance(error, BadResponseError) and error.status_code in GATEWAY_STATUSES


def retry_decision(error: BaseException, state: RetryState) -> RetryDecision:
    """Decide about ``error``, raised by the attempt ``state`` describes.

    Transient faults (internal errors, dropped connections, time-outs, gateway pages)
    are retried with backoff while the caller allows, except one that may have reached
    the server for an API that cannot tell a repeat (``NOT_RESENT``); a rate-limit refusal after at
    least a second more. An expired UserSig is retried at once, once, when the client
    can sign a fresh one. Anything else is final: a rejected request would only be
    rejected again.
    """
    if isinstance(error, APIError):
        if state.maybe_processed and error.code in ALREADY_DONE.get(state.endpoint, ()):
            return _SETTLED
        if error.code == USERSIG_EXPIRED:
            return _RENEW if state.can_renew_usersig else _GIVE_UP
    if state.retries_left <= 0 or not is_transient(error):
        return _GIVE_UP
    if state.endpoint in NOT_RESENT and _outcome_unknown(error):
        return _GIVE_UP
    delay = backoff(state.attempt)
    if isinstance(error, RateLimitError):
        delay += RATE_LIMITED_RETRY_DELAY
    return RetryDecision(True, delay)


def next_state(state: RetryState, error: BaseException, decision: RetryDecision) -> RetryState:
    """The state of the attempt that follows ``decision`` to retry after ``error``."""
    return attrs.evolve(
        state,
        attempt=state.attempt + 1,
        retries_left=state.retries_left - (0 if decision.renew_usersig else 1),
        can_renew_usersig=state.can_renew_usersig and not decision.renew_usersig,
        maybe_processed=state.maybe_processed or _outcome_unknown(error),
    )
