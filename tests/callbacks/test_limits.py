"""The receiver's bounds: handler slots under races, and rate-limited logs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tencent_chat_robots.callbacks import RobotCallbacks
from tencent_chat_robots.callbacks._limits import LogLimiter, Slots

from ._helpers import SDKAPPID, TOKEN, Clock, Recorder, answer, c2c, encode, query, until


async def test_slots_are_taken_in_order_and_never_leak_to_a_waiter_that_gave_up() -> None:
    slots = Slots(1)
    assert await slots.acquire(0)
    assert not await slots.acquire(0)  # none free, no wait
    first = asyncio.create_task(slots.acquire(30))
    second = asyncio.create_task(slots.acquire(30))
    await until(lambda: len(slots.waiters) == 2)
    slots.release()  # handed to the first waiter...
    first.cancel()  # ...which is cancelled before it could take it: passed on
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second is True
    assert slots.free == 0
    slots.release()
    assert slots.free == 1
    assert slots.waiters == type(slots.waiters)()


async def test_a_slot_waiter_that_times_out_leaves_the_queue() -> None:
    slots = Slots(1)
    await slots.acquire(0)
    assert await slots.acquire(0.01) is False
    assert len(slots.waiters) == 0
    slots.release()
    assert slots.free == 1


def test_log_limiter_logs_once_per_reason_per_period_then_says_how_many_were_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    clock = Clock(0)
    limiter = LogLimiter(every=1.0, clock=clock)
    for _ in range(5):
        limiter.log(logging.WARNING, "sign", "refused %s", "x")
    limiter.log(logging.WARNING, "body", "refused %s", "y")
    clock.now = 1.0
    limiter.log(logging.WARNING, "sign", "refused %s", "z")
    assert [record.getMessage() for record in caplog.records] == [
        "refused x",
        "refused y",
        "refused z (and 4 more like it not logged)",
    ]


async def test_a_flood_of_forged_callbacks_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=Clock())
    for _ in range(100):
        assert answer(await bot.dispatch(query(token="forged"), b"{}"))[0] == 401
    assert bot.stats["refused:sign"] == 100
    assert len([r for r in caplog.records if "refused a callback" in r.getMessage()]) == 1


async def test_a_bug_inside_the_receiver_is_a_500_and_serving_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    times = iter([ZeroDivisionError("clock broke")])

    def clock() -> float:
        failure = next(times, None)
        if failure is not None:
            raise failure
        return Clock()()

    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=clock, dedup=None)
    handler = Recorder()
    bot.on_c2c_message(handler)
    status, body = answer(await bot.dispatch(query(), encode(c2c())))
    assert (status, body["ErrorInfo"]) == (500, "internal error")
    assert bot.stats["error"] == 1
    assert any("failed inside the receiver" in r.getMessage() for r in caplog.records)
    assert answer(await bot.dispatch(query(), encode(c2c())))[0] == 200
    await bot.join()
    assert len(handler.events) == 1


async def test_the_token_is_in_no_log_line_whatever_happens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=Clock(), signal_deadline=0.01)

    @bot.on_c2c_message
    async def broken(event: object) -> None:
        raise ValueError(TOKEN)

    bot.on_signal_message(Recorder(gate=asyncio.Event()))
    await bot.feed(c2c())
    await bot.feed(c2c())
    await bot.feed(
        {
            "CallbackCommand": "Chatbot.OnC2CSignalMessage",
            "From_Account": "u",
            "To_Account": "@RBT#1",
            "MsgKey": "s",
        }
    )
    await bot.dispatch(query(token="forged"), b"{}")
    await bot.dispatch(query(Sign="0" * 64), b"{}")
    await bot.dispatch(query(), b"[")
    await bot.aclose()
    text = "\n".join(logging.Formatter().format(record) for record in caplog.records)
    assert "REDACTED" in text  # the handler's error, redacted
    assert TOKEN not in text
    assert query()["Sign"] not in text
