"""Redelivered signals: a failed or timed-out one is handled afresh; one in flight gets
the first one's answer; one answered by another process gets ErrorCode 1 (finding: all
three were answered a made-up success, ErrorCode 0 with an empty RspData)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tencent_chat_robots.callbacks import MemoryDedupStore, RobotCallbacks, SignalMessage, _signals

from .._virtual_time import VirtualClockLoop, run_virtual
from ._helpers import OK, SDKAPPID, SIGNAL, TOKEN, Clock, Recorder, answer, encode, query, signal


def make_bot(**options: Any) -> RobotCallbacks:
    options.setdefault("token", TOKEN)
    options.setdefault("clock", Clock())
    return RobotCallbacks(SDKAPPID, **options)


async def ask(bot: RobotCallbacks, key: str = "sig-1") -> dict[str, Any]:
    status, body = answer(await bot.dispatch(query(SIGNAL), encode(signal(key))))
    assert status == 200
    return body


async def test_a_redelivery_of_a_signal_whose_handler_failed_is_handled_afresh() -> None:
    bot = make_bot()
    calls: list[str] = []

    @bot.on_signal_message
    async def flaky(event: SignalMessage) -> str:
        calls.append(event.msg_key)
        if len(calls) == 1:
            raise ConnectionError("the weather service is down")
        return "sunny"

    first = await ask(bot)
    assert (first["ErrorCode"], first["ErrorInfo"], first["RspData"]) == (
        1,
        "the handler failed",
        "",
    )
    assert await ask(bot) == {**OK, "RspData": "sunny"}
    assert calls == ["sig-1", "sig-1"]
    assert bot.stats["duplicate"] == 0


def test_a_redelivery_of_a_signal_whose_handler_timed_out_is_handled_afresh() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        bot = make_bot()
        calls: list[str] = []

        @bot.on_signal_message
        async def slow_then_fast(event: SignalMessage) -> str:
            calls.append(event.msg_key)
            if len(calls) == 1:
                await asyncio.sleep(5)
            return "sunny"

        first = await ask(bot)
        assert (first["ErrorCode"], first["ErrorInfo"]) == (1, "the handler timed out")
        assert await ask(bot) == {**OK, "RspData": "sunny"}
        assert calls == ["sig-1", "sig-1"]
        await bot.join()
        assert (bot.stats["handler_timeout"], bot.stats["handler_ok"]) == (1, 1)

    run_virtual(main)


async def _in_flight_pair(bot: RobotCallbacks, gate: asyncio.Event) -> tuple[Any, Any]:
    """The signal dispatched twice, the second while the first's handler runs."""
    first = asyncio.create_task(bot.dispatch(query(SIGNAL), encode(signal())))
    second = asyncio.create_task(bot.dispatch(query(SIGNAL), encode(signal())))
    for _ in range(10):  # turns of the loop: both reach their waits
        await asyncio.sleep(0)
    assert not second.done()  # the duplicate waits for the first's answer
    gate.set()
    return answer(await first), answer(await second)


async def test_an_in_flight_duplicate_gets_the_first_ones_answer() -> None:
    bot = make_bot()
    gate = asyncio.Event()
    handler = Recorder(gate=gate, result='{"weather":"sunny"}')
    bot.on_signal_message(handler)
    first, second = await _in_flight_pair(bot, gate)
    assert first == second == (200, {**OK, "RspData": '{"weather":"sunny"}'})
    assert len(handler.events) == 1
    assert bot.stats["duplicate"] == 1


async def test_an_in_flight_duplicate_of_a_failing_signal_gets_error_code_1() -> None:
    bot = make_bot()
    gate = asyncio.Event()

    @bot.on_signal_message
    async def broken(event: SignalMessage) -> str:
        await gate.wait()
        raise RuntimeError("no")

    first, second = await _in_flight_pair(bot, gate)
    assert first[1]["ErrorCode"] == second[1]["ErrorCode"] == 1
    assert second[1] == {
        "ActionStatus": "FAIL",
        "ErrorCode": 1,
        "ErrorInfo": "duplicate",
        "RspData": "",
    }


def test_an_in_flight_duplicate_of_a_signal_that_times_out_gets_error_code_1_then() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        bot = make_bot(signal_deadline=1.0)
        bot.on_signal_message(Recorder(gate=asyncio.Event()))  # never answers

        first = asyncio.create_task(ask(bot))
        await asyncio.sleep(0.5)  # virtual time: the redelivery comes half a second later
        began = loop.time()
        second = await ask(bot)
        assert loop.time() - began == pytest.approx(0.5)  # when the first timed out
        assert (second["ErrorCode"], second["ErrorInfo"]) == (1, "duplicate")
        assert ((await first)["ErrorCode"], bot.stats["handler_timeout"]) == (1, 1)

    run_virtual(main)


async def test_a_duplicate_of_a_signal_another_process_answered_gets_error_code_1() -> None:
    store = MemoryDedupStore()  # shared, as Redis between two workers
    first, second = make_bot(dedup=store), make_bot(dedup=store)
    first.on_signal_message(Recorder(result="the answer"))
    second_handler = Recorder(result="never")
    second.on_signal_message(second_handler)
    assert (await ask(first))["RspData"] == "the answer"
    # The second process cannot know the RspData: it says so rather than invent a success.
    assert await ask(second) == {
        "ActionStatus": "FAIL",
        "ErrorCode": 1,
        "ErrorInfo": "duplicate",
        "RspData": "",
    }
    assert second_handler.events == []
    assert second.stats["duplicate"] == 1


async def test_the_answers_kept_for_duplicates_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_signals, "ANSWERS_KEPT", 2)
    bot = make_bot()

    @bot.on_signal_message
    async def echo(event: SignalMessage) -> str:
        return event.msg_key

    for key in ("a", "b", "c"):
        assert (await ask(bot, key))["RspData"] == key
    assert await ask(bot, "c") == {**OK, "RspData": "c"}  # kept
    assert (await ask(bot, "a"))["ErrorCode"] == 1  # forgotten: "a" is not handled again
    assert bot.stats["handler_ok"] == 3
