"""A burst of callbacks against a shared Redis: de-duplication stays on (finding: the
URL-made client's default pool refused past 100 connections, so a burst of
redeliveries was handled twice, counted ``dedup_unavailable``)."""

from __future__ import annotations

import asyncio
from collections import Counter

import fakeredis
import pytest
from fakeredis.aioredis import FakeAsyncRedisConnection
from redis.asyncio import BlockingConnectionPool

from tencent_chat_robots import ValidationError
from tencent_chat_robots.callbacks import MemoryDedupStore, RedisDedupStore, RobotCallbacks

from ._helpers import SDKAPPID, TOKEN, Clock, c2c, encode, query


def _store(server: fakeredis.FakeServer, **options: object) -> RedisDedupStore:
    return RedisDedupStore(
        "redis://fakeredis", connection_class=FakeAsyncRedisConnection, server=server, **options
    )


async def test_1000_callbacks_each_delivered_to_two_workers_at_once_are_each_handled_once() -> None:
    server = fakeredis.FakeServer()
    handled: Counter[str] = Counter()
    bots = []
    for _ in range(2):  # two workers, each with its own store made from the URL
        bot = RobotCallbacks(
            SDKAPPID, token=TOKEN, clock=Clock(), dedup=_store(server), max_handlers=5000
        )

        @bot.on_c2c_message
        async def count(event: object) -> None:
            handled[event.msg_key] += 1  # type: ignore[attr-defined]

        bots.append(bot)
    answers = await asyncio.gather(
        *(bot.dispatch(query(), encode(c2c(f"m{i}"))) for i in range(1000) for bot in bots)
    )
    for bot in bots:
        await bot.join()
    assert {status for status, _, _ in answers} == {200}
    assert len(handled) == 1000
    assert set(handled.values()) == {1}
    assert [bot.stats["dedup_unavailable"] for bot in bots] == [0, 0]
    assert sum(bot.stats["duplicate"] for bot in bots) == 1000
    for bot in bots:
        await bot.dedup.aclose()  # type: ignore[union-attr]


async def test_a_store_made_from_a_url_waits_for_a_connection_of_a_bounded_pool() -> None:
    server = fakeredis.FakeServer()
    store = _store(server, timeout=0.3)
    pool = store.client.connection_pool
    assert isinstance(pool, BlockingConnectionPool)
    assert (pool.max_connections, pool.timeout) == (50, 0.3)
    await store.aclose()
    sized = _store(server, max_connections=8)
    assert sized.client.connection_pool.max_connections == 8
    await sized.aclose()
    with pytest.raises(ValidationError, match="max_connections"):
        _store(server, max_connections=0)
    with pytest.raises(ValidationError, match="max_connections"):
        RedisDedupStore(fakeredis.FakeAsyncRedis(server=server), max_connections=8)


class CountingStore(MemoryDedupStore):
    """Counts its calls in flight; each call yields to the loop once, as a network call."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most = 0

    async def claim(self, key: str, ttl: float) -> bool:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0)  # a yield, not a wait for anything
            return await super().claim(key, ttl)
        finally:
            self.in_flight -= 1


async def test_a_receiver_keeps_at_most_50_store_calls_in_flight_and_queues_the_rest() -> None:
    store = CountingStore()
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=Clock(), dedup=store, max_handlers=1000)
    bot.on_c2c_message(_nothing)
    await asyncio.gather(*(bot.dispatch(query(), encode(c2c(f"k{i}"))) for i in range(500)))
    await bot.join()
    assert store.most == 50  # MAX_STORE_OPERATIONS
    assert bot.stats["handled"] == 500
    assert bot.stats["dedup_unavailable"] == 0


async def _nothing(event: object) -> None:
    return None
