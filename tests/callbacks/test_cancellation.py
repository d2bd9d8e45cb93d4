"""A callback cancelled after claiming its key and before its handler was started gives
the claim back, so that Tencent's redelivery is handled (finding: the claim was kept,
and the event never handled by anyone)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from tencent_chat_robots.callbacks import MemoryDedupStore, RobotCallbacks, SignalMessage

from ._helpers import OK, SDKAPPID, SIGNAL, TOKEN, Clock, Recorder, answer, c2c, encode, query
from ._helpers import signal as signal_body


class GatedStore(MemoryDedupStore):
    """As Redis: a claim lands on the server at once, its reply waits for ``gate``; a
    release is a round trip (one yield to the loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def claim(self, key: str, ttl: float) -> bool:
        fresh = await super().claim(key, ttl)
        self.entered.set()
        await self.gate.wait()
        return fresh

    async def release(self, key: str) -> None:
        await asyncio.sleep(0)  # a yield: an unshielded release dies here when cancelled
        await super().release(key)


Cancel = Callable[[Callable[[], Awaitable[Any]], Awaitable[None]], Awaitable[None]]


async def cancel_with_asyncio(call: Callable[[], Awaitable[Any]], when: Awaitable[None]) -> None:
    """``call()`` in a task, cancelled (``Task.cancel``, once) as soon as ``when`` is."""
    task = asyncio.create_task(call())
    await when
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def cancel_with_anyio(call: Callable[[], Awaitable[Any]], when: Awaitable[None]) -> None:
    """``call()`` inside an anyio scope cancelled as soon as ``when`` is: level-triggered,
    every later await in it is cancelled too (as a Starlette task group does)."""
    scopes: list[anyio.CancelScope] = []

    async def scoped() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await call()
        assert scope.cancelled_caught

    task = asyncio.create_task(scoped())
    await when
    scopes[0].cancel()
    await task


CANCELLERS = pytest.mark.parametrize(
    "cancel", [cancel_with_asyncio, cancel_with_anyio], ids=["asyncio", "anyio"]
)


@CANCELLERS
async def test_a_callback_cancelled_during_its_claim_gives_the_claim_back(cancel: Cancel) -> None:
    store = GatedStore()
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=Clock(), dedup=store)
    handler = Recorder()
    bot.on_c2c_message(handler)
    await cancel(lambda: bot.dispatch(query(), encode(c2c("k"))), store.entered.wait())
    await bot.join()  # the release is carried through
    assert len(store) == 0
    assert handler.events == []
    assert bot.stats["cancelled"] == 1
    store.gate.set()
    assert answer(await bot.feed(c2c("k"))) == (200, OK)  # Tencent's redelivery
    assert [event.msg_key for event in handler.events] == ["k"]


@CANCELLERS
async def test_a_signal_cancelled_while_waiting_for_a_slot_gives_its_claim_back(
    cancel: Cancel,
) -> None:
    store = GatedStore()
    store.gate.set()  # claims answer at once
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=Clock(), dedup=store, max_signal_handlers=1)
    gate = asyncio.Event()
    started = asyncio.Event()
    seen: list[str] = []

    @bot.on_signal_message
    async def handler(event: SignalMessage) -> str:
        seen.append(event.msg_key)
        started.set()
        if event.msg_key == "busy":
            await gate.wait()
        return "done"

    busy = asyncio.create_task(bot.dispatch(query(SIGNAL), encode(signal_body("busy"))))
    await started.wait()  # the only signal slot is taken

    async def waiting_for_a_slot() -> None:
        await until_waiting(bot)

    await cancel(
        lambda: bot.dispatch(query(SIGNAL), encode(signal_body("victim"))), waiting_for_a_slot()
    )
    gate.set()
    await busy
    await bot.join()
    assert len(store) == 1  # "busy" only
    status, body = answer(await bot.dispatch(query(SIGNAL), encode(signal_body("victim"))))
    assert (status, body["ErrorCode"], body["RspData"]) == (200, 0, "done")
    assert seen == ["busy", "victim"]


async def until_waiting(bot: RobotCallbacks) -> None:
    """Until a callback waits for a signal slot (turns of the loop, no timed wait)."""
    for _ in range(1000):
        if bot._signal_slots.waiters:
            return
        await asyncio.sleep(0)
    raise AssertionError("no callback waits for a slot")


async def test_a_signal_cancelled_while_its_handler_runs_gives_its_claim_back() -> None:
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=Clock())
    handler = Recorder(gate=asyncio.Event(), result="answer")
    bot.on_signal_message(handler)
    await cancel_with_asyncio(
        lambda: bot.dispatch(query(SIGNAL), encode(signal_body())), handler.started.wait()
    )
    await bot.join()
    assert handler.cancelled == 1
    assert bot.stats["handler_cancelled"] == 1
    assert len(bot.dedup) == 0  # type: ignore[arg-type]
