"""Acknowledge first, bounded handlers, signals, failures, the loop guard and the lifecycle."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tencent_chat_robots import TencentChatError, ValidationError
from tencent_chat_robots.callbacks import (
    C2CMessage,
    GroupMention,
    MemoryDedupStore,
    RobotCallbacks,
    SignalMessage,
)

from ._helpers import (
    OK,
    SDKAPPID,
    SIGNAL,
    TOKEN,
    Clock,
    Recorder,
    answer,
    c2c,
    encode,
    group,
    query,
    signal,
    until,
)


def make_bot(**options: Any) -> RobotCallbacks:
    options.setdefault("token", TOKEN)
    options.setdefault("clock", Clock())
    return RobotCallbacks(SDKAPPID, **options)


# --- acknowledge first -----------------------------------------------------------------


async def test_an_after_event_is_acknowledged_before_its_handler_finishes() -> None:
    bot = make_bot()
    gate = asyncio.Event()
    handler = Recorder(gate=gate)
    bot.on_c2c_message(handler)
    assert answer(await bot.dispatch(query(), encode(c2c()))) == (200, OK)
    await handler.started.wait()
    assert bot.running == 1  # answered while the handler still runs
    assert bot.stats["handled"] == 1
    assert bot.stats["handler_ok"] == 0
    gate.set()
    await bot.join()
    assert bot.running == 0
    assert bot.stats["handler_ok"] == 1


async def test_the_decorators_return_the_function_and_refuse_a_second_handler() -> None:
    bot = make_bot()

    async def first(event: C2CMessage) -> None:
        return None

    async def second(event: C2CMessage) -> None:
        return None

    assert bot.on_c2c_message(first) is first
    with pytest.raises(ValidationError, match="already has a handler"):
        bot.on_c2c_message(second)

    def not_async(event: GroupMention) -> None:
        return None

    with pytest.raises(ValidationError, match="async function"):
        bot.on_group_mention(not_async)  # type: ignore[arg-type]


async def test_an_event_without_a_handler_is_acknowledged_and_counted() -> None:
    bot = make_bot()
    assert answer(await bot.dispatch(query(), encode(c2c()))) == (200, OK)
    status, body = answer(await bot.dispatch(query(SIGNAL), encode(signal())))
    assert (status, body["ErrorCode"], body["RspData"]) == (200, 1, "")
    assert bot.stats["unhandled"] == 2


async def test_an_unknown_command_goes_to_on_unknown() -> None:
    bot = make_bot()
    handler = Recorder()
    bot.on_unknown(handler)
    body = {"CallbackCommand": "Group.CallbackAfterSendMsg", "GroupId": "g"}
    assert answer(await bot.dispatch(query("Group.CallbackAfterSendMsg"), encode(body))) == (
        200,
        OK,
    )
    await bot.join()
    (event,) = handler.events
    assert (event.command, event.raw) == ("Group.CallbackAfterSendMsg", body)
    # Without on_unknown it is acknowledged all the same.
    bare = make_bot()
    assert answer(await bare.dispatch(query("Other.Command"), encode({"x": 1}))) == (200, OK)
    assert bare.stats["unhandled"] == 1


async def test_the_command_may_come_from_the_query_or_the_body_alone() -> None:
    bot = make_bot()
    handler = Recorder()
    bot.on_c2c_message(handler)
    body = c2c("from-query")
    del body["CallbackCommand"]
    assert answer(await bot.dispatch(query(), encode(body)))[0] == 200
    assert answer(await bot.dispatch(query(None), encode(c2c("from-body"))))[0] == 200
    await bot.join()
    assert [event.msg_key for event in handler.events] == ["from-query", "from-body"]


# --- the loop guard ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        c2c(From_Account="@RBT#002"),  # another robot
        c2c(From_Account="@RBT#001"),  # the robot itself
        c2c(From_Account="me", To_Account="me"),  # a sender writing to itself
        group(From_Account="@RBT#009"),
        group(From_Account="bot-account", AtRobots_Account=["bot-account"]),
        signal(From_Account="@RBT#002"),
    ],
)
async def test_events_from_robots_are_acknowledged_and_not_handled(body: dict[str, Any]) -> None:
    bot = make_bot()
    handler = Recorder(result="answer")
    bot.on_c2c_message(handler)
    bot.on_group_mention(handler)
    bot.on_signal_message(handler)
    status, answered = answer(await bot.dispatch(query(body["CallbackCommand"]), encode(body)))
    assert (status, answered["ErrorCode"]) == (200, 0)
    await bot.join()
    assert handler.events == []
    assert bot.stats["looped"] == 1


async def test_the_loop_guard_can_be_turned_off() -> None:
    bot = make_bot(ignore_robot_senders=False)
    handler = Recorder()
    bot.on_c2c_message(handler)
    await bot.feed(c2c(From_Account="@RBT#002"))
    assert len(handler.events) == 1


# --- saturation: the backlog, handler_timeout and the signals' pool are in test_backlog ---


# --- signals ---------------------------------------------------------------------------


async def test_a_signal_is_answered_with_the_handlers_rsp_data() -> None:
    bot = make_bot()

    @bot.on_signal_message
    async def weather(event: SignalMessage) -> str:
        return f'{{"for":{event.data}}}'

    status, body = answer(await bot.dispatch(query(SIGNAL), encode(signal())))
    assert status == 200
    assert body == {**OK, "RspData": '{"for":{"ask":"weather"}}'}
    # A redelivery is not handled again; it gets the answer already given.
    status, body = answer(await bot.dispatch(query(SIGNAL), encode(signal())))
    assert body == {**OK, "RspData": '{"for":{"ask":"weather"}}'}
    assert bot.stats["duplicate"] == 1
    assert bot.stats["handler_ok"] == 1


async def test_a_signal_past_its_deadline_is_answered_error_code_1_and_its_handler_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = make_bot(signal_deadline=0.05)
    handler = Recorder(gate=asyncio.Event())  # never set
    bot.on_signal_message(handler)
    status, body = answer(await bot.dispatch(query(SIGNAL), encode(signal())))
    assert status == 200
    assert (body["ErrorCode"], body["RspData"]) == (1, "")
    await bot.join()
    assert handler.cancelled == 1
    assert bot.stats["handler_timeout"] == 1
    assert bot.stats["handler_cancelled"] == 0
    assert any("did not answer within" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("result", [None, 42, b"bytes"])
async def test_a_signal_handler_returning_no_str_fails_the_signal(result: Any) -> None:
    bot = make_bot()
    bot.on_signal_message(Recorder(result=result))
    status, body = answer(await bot.dispatch(query(SIGNAL), encode(signal())))
    assert (status, body["ErrorCode"], body["RspData"]) == (200, 1, "")
    assert bot.stats["handler_failed"] == 1


async def test_a_failing_signal_handler_answers_error_code_1() -> None:
    bot = make_bot()

    @bot.on_signal_message
    async def broken(event: SignalMessage) -> str:
        raise KeyError("nope")

    status, body = answer(await bot.dispatch(query(SIGNAL), encode(signal())))
    assert (status, body["ActionStatus"], body["ErrorCode"], body["RspData"]) == (
        200,
        "FAIL",
        1,
        "",
    )


# --- handler failures ------------------------------------------------------------------


async def test_a_handlers_exception_is_logged_redacted_counted_and_never_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="tencent_chat_robots")
    bot = make_bot()

    @bot.on_c2c_message
    async def broken(event: C2CMessage) -> None:
        raise RuntimeError(f"could not call with token {TOKEN}")

    assert answer(await bot.dispatch(query(), encode(c2c()))) == (200, OK)
    await bot.join()
    assert bot.stats["handler_failed"] == 1
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    # A constant message, and the exception itself for error trackers (its stack).
    assert record.getMessage() == "the Bot.OnC2CMessage handler failed"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    # Any formatter prints the traceback redacted.
    text = logging.Formatter().format(record)
    assert "Traceback" in text
    assert "RuntimeError: could not call with token REDACTED" in text
    assert all(TOKEN not in logging.Formatter().format(r) for r in caplog.records)
    # The receiver goes on.
    assert answer(await bot.dispatch(query(), encode(c2c("next"))))[0] == 200


# --- lifecycle ---------------------------------------------------------------------------


async def test_aclose_refuses_new_callbacks_at_once_and_waits_for_running_handlers() -> None:
    bot = make_bot()
    gate = asyncio.Event()
    handler = Recorder(gate=gate)
    bot.on_c2c_message(handler)
    await bot.dispatch(query(), encode(c2c("running")))
    await handler.started.wait()
    closing = asyncio.create_task(bot.aclose(timeout=30))
    await until(lambda: bot.closed)
    status, body = answer(await bot.dispatch(query(), encode(c2c("late"))))
    assert (status, body["ErrorCode"]) == (503, 1)
    assert bot.stats["refused:closed"] == 1
    assert not closing.done()  # still waiting for the handler
    gate.set()
    await closing
    assert handler.cancelled == 0
    assert bot.stats["handler_ok"] == 1
    assert [event.msg_key for event in handler.events] == ["running"]
    await bot.aclose()  # idempotent
    assert answer(await bot.dispatch(query(), encode(c2c("later"))))[0] == 503


async def test_aclose_cancels_handlers_still_running_after_its_timeout() -> None:
    bot = make_bot()
    handler = Recorder(gate=asyncio.Event())  # never set
    bot.on_c2c_message(handler)
    await bot.dispatch(query(), encode(c2c()))
    await handler.started.wait()
    await bot.aclose(timeout=0.01)
    assert handler.cancelled == 1
    assert bot.running == 0
    assert bot.stats["handler_cancelled"] == 1


async def test_a_signal_waiting_for_a_slot_when_closed_gets_503_and_its_claim_back() -> None:
    store = MemoryDedupStore()
    bot = make_bot(max_signal_handlers=1, dedup=store)
    gate = asyncio.Event()
    handler = Recorder(gate=gate, result="")
    bot.on_signal_message(handler)
    first = asyncio.create_task(bot.dispatch(query(SIGNAL), encode(signal("first"))))
    await handler.started.wait()
    waiting = asyncio.create_task(bot.dispatch(query(SIGNAL), encode(signal("second"))))
    await until(lambda: len(bot._signal_slots.waiters) == 1)
    closing = asyncio.create_task(bot.aclose())
    gate.set()
    assert answer(await waiting)[0] == 503
    assert answer(await first)[0] == 200
    await closing
    assert len(store) == 1  # only "first" stays claimed
    assert [event.msg_key for event in handler.events] == ["first"]


async def test_a_handler_that_closes_its_receiver_does_not_wait_for_itself() -> None:
    bot = make_bot()

    @bot.on_c2c_message
    async def shut_down(event: C2CMessage) -> None:
        await bot.aclose(timeout=30)

    await bot.feed(c2c())
    assert bot.closed
    assert bot.stats["handler_ok"] == 1


async def test_a_task_cancelled_before_it_started_gives_its_slot_back() -> None:
    bot = make_bot(max_handlers=1, max_backlog=0)
    handler = Recorder()
    bot.on_c2c_message(handler)
    await bot.dispatch(query(), encode(c2c("a")))
    (task,) = bot._runs.tasks
    task.cancel()  # before the loop ran it once: none of the handler's code runs
    await bot.join()
    assert handler.events == []
    assert bot.load.running == 0
    assert bot.stats["handler_cancelled"] == 1
    assert answer(await bot.dispatch(query(), encode(c2c("b"))))[0] == 200


# --- feed, join, arguments ---------------------------------------------------------------


async def test_feed_signs_with_the_current_clock_and_waits_for_the_handler() -> None:
    clock = Clock()
    bot = make_bot(clock=clock)
    handler = Recorder()
    bot.on_c2c_message(handler)
    assert answer(await bot.feed(c2c())) == (200, OK)
    assert len(handler.events) == 1  # already handled
    clock.now += 3600
    assert answer(await bot.feed(c2c("k2")))[0] == 200  # signed for the new now
    # A RequestTime given without a Sign is signed; one outside the window is refused.
    stale = {"RequestTime": str(int(clock.now - 61))}
    assert answer(await bot.feed(c2c("k3"), query=stale))[0] == 401
    assert answer(await bot.feed(encode(c2c("k4"))))[0] == 200
    assert [event.msg_key for event in handler.events] == ["key-1", "k2", "k4"]
    with pytest.raises(ValidationError):
        await bot.feed({"x": object()})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sdkappid": 0}, "sdkappid"),
        ({"sdkappid": "1400000000"}, "sdkappid"),
        ({"token": ""}, "token"),
        ({"token": 5}, "token"),
        ({"token": "\ud800"}, "token"),
        ({"max_skew": -1}, "max_skew"),
        ({"max_skew": float("nan")}, "max_skew"),
        ({"clock": 5}, "clock"),
        ({"max_handlers": 0}, "max_handlers"),
        ({"max_handlers": 1.5}, "max_handlers"),
        ({"max_backlog": -1}, "max_backlog"),
        ({"handler_timeout": 0}, "handler_timeout"),
        ({"max_signal_handlers": 0}, "max_signal_handlers"),
        ({"max_dedup_keys": 0}, "max_keys"),
        ({"dedup": "redis://localhost"}, "dedup"),
        ({"dedup_ttl": 0}, "dedup_ttl"),
        ({"max_body": 0}, "max_body"),
        ({"signal_deadline": 2}, "signal_deadline"),
        ({"signal_deadline": 2.5}, "signal_deadline"),
        ({"signal_deadline": 0}, "signal_deadline"),
        ({"ignore_robot_senders": 1}, "ignore_robot_senders"),
    ],
)
def test_arguments_are_checked(options: dict[str, Any], message: str) -> None:
    options.setdefault("sdkappid", SDKAPPID)
    with pytest.raises(ValidationError, match=message) as caught:
        RobotCallbacks(**options)
    assert isinstance(caught.value, TencentChatError)


def test_repr_shows_the_app_and_whether_a_token_is_set_only() -> None:
    bot = make_bot()
    assert repr(bot) == "RobotCallbacks(sdkappid=1400000000, token_set=True)"
    assert TOKEN not in repr(bot._token)
    assert repr(RobotCallbacks(SDKAPPID)) == "RobotCallbacks(sdkappid=1400000000, token_set=False)"
