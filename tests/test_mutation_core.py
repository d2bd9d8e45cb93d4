"""Edges of the core modules that the mutation run (``nox -s mutation``) found untested:
the answer's envelope, the secret matcher, the waiting line's count, the error table.
"""

from __future__ import annotations

import asyncio
import gc
import pickle
from typing import Any

import pytest

from tencent_chat_robots import (
    ActionResult,
    BadResponseError,
    BulkStoppedError,
    QueueTimeoutError,
    RawResponse,
)
from tencent_chat_robots._envelope import parse_envelope, structure
from tencent_chat_robots._redact import Secret, redact
from tencent_chat_robots._waiters import Line, bulk_cap, slots_for_bulk

from ._virtual_time import VirtualClockLoop, run_virtual

ENDPOINT = "openim_robot_http_svc/delete_robot"


# -- the envelope --------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        RawResponse(502, b"bad gateway"),
        RawResponse(200, b"not json"),
        RawResponse(200, b'{"ErrorCode": 0, "ActionStatus": "FAIL"}'),
    ],
)
def test_a_bad_answer_names_its_endpoint(response: RawResponse) -> None:
    with pytest.raises(BadResponseError) as caught:
        parse_envelope(response, ENDPOINT)
    assert caught.value.endpoint == ENDPOINT


def test_an_answer_may_start_with_a_byte_order_mark() -> None:
    body = b'\xef\xbb\xbf{"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}'
    assert parse_envelope(RawResponse(200, body), ENDPOINT)["ActionStatus"] == "OK"


class Robots:
    pass


def test_an_answer_of_the_wrong_shape_keeps_only_a_text_request_id() -> None:
    from tencent_chat_robots._models import GetAllRobotsResponse

    for request_id, kept in (("id-1", "id-1"), (42, None)):
        bad = structure(
            {"RequestId": request_id, "Robot_Account": 5}, GetAllRobotsResponse, ENDPOINT, 7
        )
        assert isinstance(bad, BadResponseError)
        assert bad.request_id == kept
        assert bad.random == 7


def test_an_action_result_is_not_settled_by_a_retry_unless_told() -> None:
    plain = structure({"RequestId": "r"}, ActionResult, ENDPOINT, sent_random=3)
    settled = structure({"RequestId": "r"}, ActionResult, ENDPOINT, 3, settled=True)
    assert isinstance(plain, ActionResult)
    assert isinstance(settled, ActionResult)
    assert plain.settled_on_retry is False
    assert settled.settled_on_retry is True


# -- the errors ----------------------------------------------------------------------


def test_a_bulk_stopped_error_keeps_its_text_and_endpoint() -> None:
    error = BulkStoppedError("stopped", endpoint=ENDPOINT)
    assert str(error) == "stopped"
    assert error.endpoint == ENDPOINT
    assert error.request_sent is False


def test_a_queue_time_out_was_not_sent_unless_told() -> None:
    assert QueueTimeoutError("late").request_sent is False
    assert QueueTimeoutError("late", request_sent=True).request_sent is True


# -- secrets -------------------------------------------------------------------------


def test_a_secret_cannot_be_pickled() -> None:
    with pytest.raises(TypeError, match=r"^a Secret cannot be pickled$"):
        pickle.dumps(Secret("hunter2-hunter2"))


def test_short_secrets_are_redacted_whole_the_longest_first() -> None:
    """Secrets too short to find by their pieces are matched as exact strings; one that
    begins another must not leave the rest of the longer one showing."""
    boxes = [Secret("pass!"), Secret("pass!word"), Secret("pw#1")]
    assert redact("a pass!word b") == "a REDACTED b"
    assert redact("c pass! d") == "c REDACTED d"
    assert redact("e pw#1 f pw%231 g") == "e REDACTED f REDACTED g"
    del boxes


def test_pieces_of_two_secrets_side_by_side_are_one_redaction() -> None:
    a, b = "A" * 10 + "0123456789abcdefghij", "B" * 10 + "klmnopqrstuvwxyz0123"
    boxes = [Secret(a), Secret(b)]
    assert redact(f"<{a[-20:]}{b[:20]}>") == "<REDACTED>"
    del boxes


# -- the waiting line ----------------------------------------------------------------


class Giver:
    def deadline_reached(self) -> None:
        pass

    def timed_out(self) -> QueueTimeoutError:
        return QueueTimeoutError("late")

    def served_but_cancelled(self) -> None:
        pass


def test_waiters_that_leave_are_no_longer_counted_and_the_rest_are_served_in_order() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[Any, ...]:
        line, giver = Line(), Giver()
        served: list[int] = []

        async def wait(name: int, rank: int) -> None:
            await line.wait(rank, None, giver)
            served.append(name)

        # More than enough leavers to set off a compaction of the queue.
        leavers = [asyncio.ensure_future(wait(n, 1)) for n in range(100)]
        stayers = [asyncio.ensure_future(wait(100 + n, 1)) for n in range(3)]
        await asyncio.sleep(0)
        assert line.waiting == 103
        assert line.ahead(1) == 103
        for task in leavers:
            task.cancel()
        await asyncio.sleep(0)
        counts = (line.waiting, line.ahead(1), line.ahead(0), bool(line))
        first = line.serve()
        await asyncio.sleep(0)
        rest = [line.serve(), line.serve(), line.serve()]
        await asyncio.gather(*stayers)
        return counts, first, rest, served, line.waiting, bool(line)

    counts, first, rest, served, waiting, nonempty = run_virtual(main)
    assert counts == (3, 3, 0, True)
    assert first == 1
    assert rest == [1, 1, None]
    assert served == [100, 101, 102]
    assert (waiting, nonempty) == (0, False)


def test_a_few_leavers_are_not_compacted_away_wrongly() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[Any, ...]:
        line, giver = Line(), Giver()
        tasks = [asyncio.ensure_future(line.wait(0, None, giver)) for _ in range(5)]
        await asyncio.sleep(0)
        tasks[0].cancel()
        tasks[2].cancel()
        await asyncio.sleep(0)
        assert line.waiting == 3
        order = [line.serve() for _ in range(4)]
        await asyncio.sleep(0)
        return order, [t.cancelled() for t in tasks], line.waiting

    order, cancelled, waiting = run_virtual(main)
    assert order == [0, 0, 0, None]
    assert cancelled == [True, False, True, False, False]
    assert waiting == 0


def test_an_empty_line_is_false() -> None:
    assert not Line()
    assert Line().serve() is None


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 100, 1000])
def test_slots_for_bulk_is_the_fewest_that_let_n_bulk_calls_fly(n: int) -> None:
    size = slots_for_bulk(n)
    assert bulk_cap(size) >= n
    assert size == n or bulk_cap(size - 1) < n


def test_no_dropped_client_keeps_redaction_busy() -> None:
    gc.collect()
    assert redact("plain text") == "plain text"


# -- reprs ---------------------------------------------------------------------------


def test_reprs_of_a_call_and_a_limiter_show_their_arguments() -> None:
    from tencent_chat_robots import Call, RateLimiter

    assert repr(Call.add_robot_to_room("r1", "@RBT#1")) == (
        "Call.add_robot_to_room(room_id='r1', robot_account='@RBT#1')"
    )
    assert repr(RateLimiter(10)) == "RateLimiter(rate=10, burst=2)"
    assert repr(RateLimiter(10, rates={"delete_robot": 5})) == (
        "RateLimiter(rate=10, rates={'openim_robot_http_svc/delete_robot': 5}, burst=2)"
    )


# -- what sizes a bulk run's pool ----------------------------------------------------


def test_a_bulk_group_counts_the_calls_in_a_backoff() -> None:
    from tencent_chat_robots._bulk import BulkGroup

    group = BulkGroup()
    assert group.backing_off == 0
    group.backoff(True)
    group.backoff(True)
    assert group.backing_off == 2
    group.backoff(False)
    assert group.backing_off == 1


def test_the_time_on_the_wire_is_the_shortest_of_the_last_two_windows_of_256() -> None:
    from tencent_chat_robots._bulk import BulkGroup

    async def main(loop: VirtualClockLoop) -> list[float]:
        group = BulkGroup()
        seen = [group.wire_seconds]

        def answers(count: int, seconds: float) -> None:
            for _ in range(count):
                group.attempt_ended(None, 1, loop.time() - seconds, None, None)  # type: ignore[arg-type]

        answers(256, 1.0)
        seen.append(group.wire_seconds)
        answers(255, 2.0)
        seen.append(group.wire_seconds)  # the older window still has the 1 s answers
        answers(1, 2.0)
        seen.append(group.wire_seconds)  # that window is gone now
        answers(1, 3.0)
        seen.append(group.wire_seconds)
        return seen

    assert run_virtual(main) == [0.0, 1.0, 1.0, 2.0, 2.0]


def test_a_calls_result_is_what_the_clients_method_returns() -> None:
    from tencent_chat_robots import Call
    from tencent_chat_robots._models import GetAllRobotsResponse

    answer = GetAllRobotsResponse(robot_account=["@RBT#1", "@RBT#2"], request_id="r")
    assert Call.get_all_robots().result(answer) == ["@RBT#1", "@RBT#2"]
    action = ActionResult("r")
    assert Call.delete_robot("@RBT#1").result(action) is action


def test_a_key_that_is_no_call_is_shown_in_the_refusal() -> None:
    from tencent_chat_robots import Call, ValidationError

    with pytest.raises(ValidationError) as caught:
        Call.from_key(["no_such_api", 1])
    assert str(caught.value) == "not a call's key: ['no_such_api', 1]"


def test_an_endpoint_outside_the_table_gets_a_gate_of_its_own_with_the_limiter() -> None:
    from tencent_chat_robots._gate import Gates
    from tencent_chat_robots._limiter import adapt_limiter
    from tencent_chat_robots._options import CallOptions

    class Recording:
        def __init__(self) -> None:
            self.keys: list[str] = []

        async def acquire(self, key: str) -> None:
            self.keys.append(key)

    async def main(loop: VirtualClockLoop) -> tuple[str, list[str], float | None]:
        user = Recording()
        gates = Gates(2, adapt_limiter(user))
        gate = gates["mine/custom"]
        waited = await gate.enter(CallOptions())
        gate.leave()
        assert gates["mine/custom"] is gate
        return gate.endpoint, user.keys, waited

    endpoint, keys, waited = run_virtual(main)
    assert endpoint == "mine/custom"
    assert keys == ["mine/custom"]
    assert waited is not None


def test_a_waiter_cancelled_with_a_message_gets_that_message() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[Any, ...]:
        line = Line()

        async def waiter() -> tuple[Any, ...]:
            # Read inside the waiting task: Python 3.10 does not pass a cancellation's
            # message on to whoever awaits the task.
            try:
                await line.wait(0, None, Giver())
            except asyncio.CancelledError as err:
                return err.args
            return ()

        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        task.cancel("client closing")
        return await task, line.waiting

    assert run_virtual(main) == (("client closing",), 0)
