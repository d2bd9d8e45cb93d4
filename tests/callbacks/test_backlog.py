"""Bounded handlers without a wall: the backlog, ``handler_timeout``, ``on_error``, the
signals' own pool, and the load a readiness probe reads."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tencent_chat_robots import ValidationError
from tencent_chat_robots.callbacks import C2CMessage, Load, RobotCallbacks, SignalMessage

from .._virtual_time import VirtualClockLoop, run_virtual
from ._helpers import OK, SDKAPPID, SIGNAL, TOKEN, Clock, Recorder, answer, c2c, encode, query
from ._helpers import signal as signal_body


def make_bot(**options: Any) -> RobotCallbacks:
    options.setdefault("token", TOKEN)
    options.setdefault("clock", Clock())
    return RobotCallbacks(SDKAPPID, **options)


async def send(bot: RobotCallbacks, key: str) -> tuple[int, dict[str, Any]]:
    return answer(await bot.dispatch(query(), encode(c2c(key))))


# --- the backlog -----------------------------------------------------------------------


async def test_with_every_slot_busy_events_are_acknowledged_queued_and_run_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    bot = make_bot(max_handlers=1, max_backlog=2)
    gate = asyncio.Event()
    handler = Recorder(gate=gate)
    bot.on_c2c_message(handler)
    assert await send(bot, "a") == (200, OK)
    await handler.started.wait()
    assert await send(bot, "b") == (200, OK)  # queued, acknowledged at once
    assert await send(bot, "c") == (200, OK)
    assert bot.load == Load(
        running=1,
        backlog=2,
        max_handlers=1,
        max_backlog=2,
        signals_running=0,
        max_signal_handlers=50,
        saturated=True,
        closed=False,
    )
    assert not bot.load.ready
    # The backlog is full: refused with 503, counted, logged once however many.
    for key in ("d", "e", "f"):
        status, body = await send(bot, key)
        assert (status, body["ErrorCode"], body["ErrorInfo"]) == (503, 1, "busy")
    assert (bot.stats["saturated"], bot.stats["queued"], bot.stats["handled"]) == (3, 2, 3)
    refused = [r for r in caplog.records if "answered 503" in r.getMessage()]
    assert len(refused) == 1
    gate.set()
    await bot.join()
    assert [event.msg_key for event in handler.events] == ["a", "b", "c"]
    assert bot.load.ready
    # The refused callbacks' claims were given back: a redelivery is handled.
    assert answer(await bot.feed(c2c("d"))) == (200, OK)
    assert [event.msg_key for event in handler.events] == ["a", "b", "c", "d"]


async def test_max_backlog_0_refuses_as_soon_as_every_slot_is_busy() -> None:
    bot = make_bot(max_handlers=1, max_backlog=0)
    gate = asyncio.Event()
    bot.on_c2c_message(Recorder(gate=gate))
    assert (await send(bot, "a"))[0] == 200
    assert bot.load.saturated
    assert (await send(bot, "b"))[0] == 503
    gate.set()
    await bot.join()
    assert not bot.load.saturated


async def test_feed_waits_for_a_queued_events_handler() -> None:
    bot = make_bot(max_handlers=1)
    gate = asyncio.Event()
    handler = Recorder(gate=gate)
    bot.on_c2c_message(handler)
    await bot.feed(c2c("a"), wait=False)
    fed = asyncio.create_task(bot.feed(c2c("b")))
    await handler.started.wait()
    assert not fed.done()
    gate.set()
    assert answer(await fed) == (200, OK)
    assert [event.msg_key for event in handler.events] == ["a", "b"]


def test_aclose_runs_the_backlog_within_its_timeout_then_drops_the_rest() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[list[str], Any, float]:
        bot = make_bot(max_handlers=1, max_backlog=10)
        started: list[str] = []

        @bot.on_c2c_message
        async def slow(event: C2CMessage) -> None:
            started.append(event.msg_key)
            await asyncio.sleep(4)

        for key in "abcd":
            await send(bot, key)
        began = loop.time()
        await bot.aclose(timeout=10)  # a and b finish, c is cancelled, d is dropped
        assert (await send(bot, "late"))[0] == 503
        return started, bot.stats, loop.time() - began

    started, stats, took = run_virtual(main)
    assert started == ["a", "b", "c"]
    assert (stats["handler_ok"], stats["handler_cancelled"], stats["backlog_dropped"]) == (2, 1, 1)
    assert took == pytest.approx(10)


# --- handler_timeout -----------------------------------------------------------------------


def test_a_handler_past_handler_timeout_is_cancelled_counted_logged_and_given_to_on_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")

    async def main(loop: VirtualClockLoop) -> tuple[float, list[Any], Any]:
        bot = make_bot(max_handlers=1, handler_timeout=30)
        errors: list[Any] = []

        @bot.on_c2c_message
        async def hangs(event: C2CMessage) -> None:
            if event.msg_key == "stuck":
                await asyncio.Event().wait()  # a call without a time-out of its own

        @bot.on_error
        async def report(event: Any, error: BaseException) -> None:
            errors.append((event.msg_key, type(error), str(error)))

        began = loop.time()
        await send(bot, "stuck")
        await send(bot, "next")  # queued behind it: runs once the slot is freed
        await bot.join()
        return loop.time() - began, errors, bot.stats

    took, errors, stats = run_virtual(main)
    assert took == pytest.approx(30)
    assert errors == [
        ("stuck", TimeoutError, "the Bot.OnC2CMessage handler did not return within 30s")
    ]
    assert (stats["handler_timeout"], stats["handler_ok"], stats["handler_cancelled"]) == (1, 1, 0)
    assert any(
        "Bot.OnC2CMessage handler did not return within 30s" in r.getMessage()
        for r in caplog.records
    )


def test_handler_timeout_none_lets_a_handler_run_as_long_as_it_takes() -> None:
    async def main(loop: VirtualClockLoop) -> Any:
        bot = make_bot(handler_timeout=None)

        @bot.on_c2c_message
        async def slow(event: C2CMessage) -> None:
            await asyncio.sleep(100_000)

        await bot.feed(c2c())
        return bot.stats

    stats = run_virtual(main)
    assert (stats["handler_ok"], stats["handler_timeout"]) == (1, 0)
    assert make_bot().handler_timeout == 300


@pytest.mark.parametrize("value", [0, -1, float("nan"), "5"])
def test_handler_timeout_is_checked(value: Any) -> None:
    with pytest.raises(ValidationError, match="handler_timeout"):
        make_bot(handler_timeout=value)


# --- on_error --------------------------------------------------------------------------


async def test_on_error_gets_the_event_and_the_exception_and_its_own_failure_is_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = make_bot()
    seen: list[Any] = []

    @bot.on_c2c_message
    async def broken(event: C2CMessage) -> None:
        raise KeyError(event.msg_key)

    @bot.on_error
    async def report(event: Any, error: BaseException) -> None:
        seen.append((event.msg_key, repr(error)))
        raise RuntimeError("the error tracker is down")

    assert answer(await bot.feed(c2c("k1"))) == (200, OK)
    assert answer(await bot.feed(c2c("k2"))) == (200, OK)
    assert seen == [("k1", "KeyError('k1')"), ("k2", "KeyError('k2')")]
    assert bot.stats["handler_failed"] == 2
    hook_failures = [r for r in caplog.records if r.getMessage() == "the on_error hook failed"]
    assert len(hook_failures) == 2
    assert hook_failures[0].exc_info is not None


async def test_on_error_does_not_delay_a_signals_answer() -> None:
    bot = make_bot()
    gate = asyncio.Event()
    seen: list[str] = []

    @bot.on_signal_message
    async def broken(event: SignalMessage) -> str:
        raise ValueError("no weather today")

    @bot.on_error
    async def report(event: Any, error: BaseException) -> None:
        await gate.wait()
        seen.append(str(error))

    status, body = answer(await bot.dispatch(query(SIGNAL), encode(signal_body())))
    assert (status, body["ErrorCode"]) == (200, 1)
    assert seen == []  # answered while the hook still runs
    gate.set()
    await bot.join()
    assert seen == ["no weather today"]


async def test_on_error_takes_one_async_function() -> None:
    bot = make_bot()

    def not_async(event: Any, error: BaseException) -> None:
        return None

    with pytest.raises(ValidationError, match="on_error takes an async function"):
        bot.on_error(not_async)  # type: ignore[arg-type]

    async def first(event: Any, error: BaseException) -> None:
        return None

    assert bot.on_error(first) is first
    with pytest.raises(ValidationError, match="on_error already has a handler"):
        bot.on_error(first)


# --- signals' own pool -------------------------------------------------------------------


async def test_a_signal_is_answered_at_once_while_after_events_fill_their_slots_and_backlog() -> (
    None
):
    bot = make_bot(max_handlers=2, max_backlog=1)
    gate = asyncio.Event()
    bot.on_c2c_message(Recorder(gate=gate))

    @bot.on_signal_message
    async def ping(event: SignalMessage) -> str:
        return '{"pong":1}'

    for key in "abc":
        assert (await send(bot, key))[0] == 200
    assert bot.load.saturated
    status, body = answer(await bot.dispatch(query(SIGNAL), encode(signal_body())))
    assert (status, body) == (200, {**OK, "RspData": '{"pong":1}'})
    gate.set()
    await bot.join()


def test_a_signal_finding_its_pool_busy_until_its_deadline_gets_error_code_1() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        bot = make_bot(max_signal_handlers=1)
        gate = asyncio.Event()
        started = asyncio.Event()

        @bot.on_signal_message
        async def slow(event: SignalMessage) -> str:
            started.set()
            if event.msg_key == "first":
                await gate.wait()
            return event.msg_key

        first = asyncio.create_task(bot.dispatch(query(SIGNAL), encode(signal_body("first"))))
        await started.wait()
        assert bot.load.signals_running == 1
        began = loop.time()
        status, body = answer(await bot.dispatch(query(SIGNAL), encode(signal_body("second"))))
        assert loop.time() - began == pytest.approx(1.5)  # waited for a slot until its deadline
        assert (status, body["ErrorCode"], body["ErrorInfo"], body["RspData"]) == (
            200,
            1,
            "busy",
            "",
        )
        assert bot.stats["saturated"] == 1
        gate.set()
        await first
        # Its claim was given back: the redelivery is handled.
        status, body = answer(await bot.dispatch(query(SIGNAL), encode(signal_body("second"))))
        assert (body["ErrorCode"], body["RspData"]) == (0, "second")

    run_virtual(main)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_backlog": -1}, "max_backlog"),
        ({"max_backlog": 1.5}, "max_backlog"),
        ({"max_signal_handlers": 0}, "max_signal_handlers"),
    ],
)
def test_the_pools_arguments_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_bot(**options)
