"""The retry policy as a table: error x state of the call -> decision. No event loop.

Expected decisions are the README's retry rules; the errors for vendor codes are built
from the documented table in ``test_envelope``, so a code mapped to the wrong class
shows up here as a wrong decision too.
"""

from __future__ import annotations

from typing import Any

import pytest

import tencent_chat_robots._retry as retry_module
from tencent_chat_robots import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    BadResponseError,
    ClientClosedError,
    Endpoint,
    RetryDecision,
    RetryState,
    TencentChatError,
    ValidationError,
    retry_decision,
)
from tencent_chat_robots._exceptions import error_class_for
from tencent_chat_robots._retry import next_state

from .test_envelope import DOCUMENTED

ROOM_DELETE = Endpoint.ROOM_DELETE_ROBOT
OTHERS = [e for e in Endpoint.ALL if e != ROOM_DELETE]


def vendor(code: int) -> APIError:
    return error_class_for(code)(code, "from the server")


def page(status: int) -> BadResponseError:
    return BadResponseError(f"HTTP {status}", status_code=status)


def state(**fields: Any) -> RetryState:
    fields.setdefault("endpoint", Endpoint.GET_ALL_ROBOTS)
    fields.setdefault("retries_left", 3)
    return RetryState(**fields)


# The codes whose meaning is "try again": the docs' "try again" / "retry" rows and
# the frequency refusals.
RETRIED_CODES = {10002, 40006, 100001, 60008, 70169, 70500, 60007, 60011, 60018, 60019, 70050}
# The message APIs' (robot-conversation.md, 2.1 and 2.2): network / internal errors
# "retry", and a group's message frequency limit "back off".
RETRIED_CODES |= {20004, 20005, 90992, 90994, 90995, 91000, 10023}
FREQUENCY_CODES = {60007, 60011, 60018, 60019, 70050, 10023}


@pytest.mark.parametrize("code", sorted(DOCUMENTED))
def test_each_documented_code_is_retried_only_if_it_says_try_again(code: int) -> None:
    decision = retry_decision(vendor(code), state(can_renew_usersig=False))
    assert decision.retry is (code in RETRIED_CODES)
    assert not decision.settled
    assert not decision.renew_usersig


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (APIConnectionError("reset"), True),
        (APIConnectionError("refused", request_sent=False), True),
        (APITimeoutError("timed out"), True),
        (page(502), True),
        (page(503), True),
        (page(504), True),
        (page(500), False),
        (page(404), False),
        (page(200), False),  # 200 that is not the envelope
        (APIError(91234, "a code nobody documented"), False),
        (ValidationError("bad argument"), False),
        (ClientClosedError("closed"), False),
        (TencentChatError("anything else"), False),
    ],
)
def test_failures_below_the_envelope(error: TencentChatError, retried: bool) -> None:
    assert retry_decision(error, state()).retry is retried


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        (1, 0.125, 0.25),
        (2, 0.25, 0.5),
        (3, 0.5, 1.0),
        (6, 4.0, 8.0),
        (10, 4.0, 8.0),
        (60, 4.0, 8.0),
    ],
)
def test_backoff_doubles_from_a_quarter_second_jittered_and_capped_at_eight(
    attempt: int, low: float, high: float
) -> None:
    for _ in range(50):  # the jitter is random: many draws, all inside the band
        delay = retry_decision(vendor(10002), state(attempt=attempt)).delay
        assert low <= delay <= high


def test_frequency_refusals_wait_a_second_more_than_the_backoff() -> None:
    for code in FREQUENCY_CODES:
        for _ in range(20):
            delay = retry_decision(vendor(code), state(attempt=1)).delay
            assert 1.125 <= delay <= 1.25


@pytest.mark.parametrize("error", [vendor(10002), vendor(60007), APITimeoutError("t"), page(502)])
def test_no_retry_once_the_callers_retries_are_used_up(error: TencentChatError) -> None:
    assert retry_decision(error, state(retries_left=0)) == RetryDecision(False)
    assert retry_decision(error, state(retries_left=1)).retry


@pytest.mark.parametrize(
    ("can_renew", "retries_left", "expected"),
    [
        (True, 3, RetryDecision(True, renew_usersig=True)),
        (True, 0, RetryDecision(True, renew_usersig=True)),  # renewal is not a caller's retry
        (False, 3, RetryDecision(False)),  # a fixed usersig=, or renewed once already
    ],
)
def test_an_expired_usersig_is_renewed_at_once(
    can_renew: bool, retries_left: int, expected: RetryDecision
) -> None:
    decision = retry_decision(
        vendor(70001), state(can_renew_usersig=can_renew, retries_left=retries_left)
    )
    assert decision == expected


def test_other_usersig_failures_are_final() -> None:
    for code in range(70002, 70021):
        assert not retry_decision(vendor(code), state(can_renew_usersig=True)).retry


@pytest.mark.parametrize(
    ("endpoint", "maybe_processed", "settled"),
    [
        (ROOM_DELETE, True, True),  # the dropped attempt removed it; the retry finds it gone
        (ROOM_DELETE, False, False),  # a first answer of 100005 is the truth
        *((endpoint, True, False) for endpoint in OTHERS),
    ],
)
def test_not_a_member_settles_a_room_removal_only_after_an_unanswered_attempt(
    endpoint: str, maybe_processed: bool, settled: bool
) -> None:
    decision = retry_decision(
        vendor(100005), state(endpoint=endpoint, maybe_processed=maybe_processed, attempt=2)
    )
    assert decision.settled is settled
    assert not decision.retry


@pytest.mark.parametrize(
    ("error", "unknown_outcome"),
    [
        (APIConnectionError("dropped after sending"), True),
        (APITimeoutError("no answer in time"), True),
        (page(502), True),
        (page(503), True),
        (page(504), True),
        (APIConnectionError("refused", request_sent=False), False),
        (APITimeoutError("connect timed out", request_sent=False), False),
        (vendor(10002), False),  # the server answered: it says what happened
        (vendor(60007), False),
    ],
)
def test_which_failures_leave_the_outcome_unknown(
    error: TencentChatError, unknown_outcome: bool
) -> None:
    before = state(attempt=1, retries_left=3)
    after = next_state(before, error, RetryDecision(True, 0.1))
    assert after.maybe_processed is unknown_outcome
    assert (after.attempt, after.retries_left) == (2, 2)
    # Once unknown, it stays unknown: a later clean refusal does not undo it.
    assert next_state(after, vendor(10002), RetryDecision(True)).maybe_processed is unknown_outcome


def test_a_renewal_does_not_use_up_a_retry_and_happens_once() -> None:
    before = state(attempt=1, retries_left=0, can_renew_usersig=True)
    after = next_state(before, vendor(70001), RetryDecision(True, renew_usersig=True))
    assert (after.attempt, after.retries_left, after.can_renew_usersig) == (2, 0, False)


@pytest.mark.parametrize(("draw", "delay"), [(0.0, 0.5), (0.5, 0.75), (0.999, 0.9995)])
def test_backoff_jitter_spans_the_upper_half_of_the_doubled_delay(
    monkeypatch: pytest.MonkeyPatch, draw: float, delay: float
) -> None:
    """Third attempt: 0.25 s doubled twice is 1 s; the jitter draws from [0.5 s, 1 s)."""
    monkeypatch.setattr(retry_module.random, "random", lambda: draw)
    assert retry_decision(vendor(10002), state(attempt=3)).delay == pytest.approx(delay)
