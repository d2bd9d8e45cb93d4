"""De-duplication: each event handled once per key within the TTL, in memory or Redis,
and handled anyway (counted) when the store fails."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest
from fakeredis.aioredis import FakeAsyncRedisConnection

from tencent_chat_robots import ValidationError
from tencent_chat_robots.callbacks import MemoryDedupStore, RedisDedupStore, RobotCallbacks

from .._virtual_time import VirtualClockLoop, run_virtual
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
)


def make_bot(**options: Any) -> RobotCallbacks:
    options.setdefault("token", TOKEN)
    options.setdefault("clock", Clock())
    return RobotCallbacks(SDKAPPID, **options)


# --- the memory store ----------------------------------------------------------------------


async def test_memory_store_claims_once_within_the_ttl_on_its_clock() -> None:
    clock = Clock(0)
    store = MemoryDedupStore(clock=clock)
    assert await store.claim("k", 600) is True
    clock.now = 599.999
    assert await store.claim("k", 600) is False
    clock.now = 600  # expired exactly at the TTL
    assert await store.claim("k", 600) is True
    assert await store.claim("k", 600) is False
    await store.release("k")
    assert await store.claim("k", 600) is True


async def test_memory_store_is_bounded_evicting_the_oldest_claim() -> None:
    clock = Clock(0)
    store = MemoryDedupStore(max_keys=3, clock=clock)
    for key in "abcd":
        clock.now += 1
        assert await store.claim(key, 600)
    assert len(store) == 3
    assert await store.claim("a", 600) is True  # evicted: a redelivery now would be handled
    assert await store.claim("c", 600) is False
    assert await store.claim("d", 600) is False
    assert len(store) == 3


async def test_memory_store_drops_expired_claims_as_it_goes() -> None:
    clock = Clock(0)
    store = MemoryDedupStore(clock=clock)
    for index in range(100):
        await store.claim(f"k{index}", 10)
    clock.now = 11
    await store.claim("new", 10)
    assert len(store) == 1


async def test_memory_store_counts_and_warns_once_of_claims_evicted_before_their_ttl(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    clock = Clock(0)
    store = MemoryDedupStore(max_keys=2, clock=clock)
    for key in "abcd":
        await store.claim(key, 600)
    assert store.evicted_early == 2  # a and b, still within their TTL
    clock.now = 700  # every claim expired: dropping them is no early eviction
    for key in "ef":
        await store.claim(key, 600)
    assert store.evicted_early == 2
    warnings = [
        r for r in caplog.records if "claims are evicted before their TTL" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "max_keys=2" in warnings[0].getMessage()


async def test_the_receiver_reports_early_evictions_and_sizes_its_store_by_max_dedup_keys() -> None:
    clock = Clock()
    bot = make_bot(clock=clock, max_dedup_keys=3)
    handler = Recorder()
    bot.on_c2c_message(handler)
    assert isinstance(bot.dedup, MemoryDedupStore)
    assert bot.dedup.max_keys == 3
    for key in ("first", "k1", "k2", "k3"):
        clock.now += 1
        await bot.feed(c2c(key))
    assert bot.stats["dedup_evicted_early"] == 1
    await bot.feed(c2c("first"))  # its claim was evicted: the redelivery is handled again
    assert [event.msg_key for event in handler.events].count("first") == 2
    assert make_bot().stats["dedup_evicted_early"] == 0
    with pytest.raises(ValidationError, match="max_dedup_keys"):
        make_bot(max_dedup_keys=3, dedup=MemoryDedupStore())
    with pytest.raises(ValidationError, match="max_keys"):
        make_bot(max_dedup_keys=0)


def test_memory_store_checks_its_arguments() -> None:
    with pytest.raises(ValidationError, match="max_keys"):
        MemoryDedupStore(0)
    with pytest.raises(ValidationError, match="clock"):
        MemoryDedupStore(clock=3)  # type: ignore[arg-type]


async def test_a_redelivered_event_is_handled_once_within_the_ttl() -> None:
    clock = Clock(0)
    bot = make_bot(dedup=MemoryDedupStore(clock=clock), dedup_ttl=600)
    handler = Recorder()
    bot.on_c2c_message(handler)
    bot.on_group_mention(handler)
    assert answer(await bot.feed(c2c("k"))) == (200, OK)
    assert answer(await bot.feed(c2c("k"))) == (200, OK)  # acknowledged, not handled
    assert answer(await bot.feed(group(seq=7))) == (200, OK)
    assert answer(await bot.feed(group(seq=7))) == (200, OK)
    assert answer(await bot.feed(group(seq=8))) == (200, OK)
    # Another group, the same sequence: another message.
    assert answer(await bot.feed(group(seq=7, GroupId="@TGS#other"))) == (200, OK)
    assert len(handler.events) == 4
    assert bot.stats["duplicate"] == 2
    clock.now = 601
    await bot.feed(c2c("k"))
    assert len(handler.events) == 5


async def test_keys_are_namespaced_by_app_and_kind() -> None:
    store = MemoryDedupStore()
    handlers = []
    for sdkappid in (SDKAPPID, SDKAPPID + 1):
        bot = RobotCallbacks(sdkappid, token=TOKEN, clock=Clock(), dedup=store)
        handler = Recorder(result="")
        bot.on_c2c_message(handler)
        bot.on_signal_message(handler)
        handlers.append(handler)
        await bot.feed(c2c("same-key"))
        await bot.feed(signal("same-key"))
    assert [len(handler.events) for handler in handlers] == [2, 2]


async def test_dedup_none_turns_it_off() -> None:
    bot = make_bot(dedup=None)
    handler = Recorder()
    bot.on_c2c_message(handler)
    await bot.feed(c2c("k"))
    await bot.feed(c2c("k"))
    assert len(handler.events) == 2


async def test_a_very_long_key_is_stored_hashed() -> None:
    store = MemoryDedupStore()
    bot = make_bot(dedup=store)
    handler = Recorder()
    bot.on_c2c_message(handler)
    await bot.feed(c2c("x" * 100_000))
    await bot.feed(c2c("x" * 100_000))
    await bot.feed(c2c("x" * 99_999 + "y"))
    assert len(handler.events) == 2
    assert max(len(key) for key in store._expiry) < 100


# --- Redis -------------------------------------------------------------------------------


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
async def redis(server: fakeredis.FakeServer) -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    client = fakeredis.FakeAsyncRedis(server=server)
    yield client
    await client.aclose()


async def test_two_workers_sharing_redis_handle_a_redelivery_once(
    server: fakeredis.FakeServer, redis: fakeredis.FakeAsyncRedis
) -> None:
    # Each worker with a client of its own, as two processes behind a load balancer.
    stores = [
        RedisDedupStore(fakeredis.FakeAsyncRedis(server=server), prefix="app", timeout=0.5)
        for _ in range(2)
    ]
    handlers = [Recorder(), Recorder()]
    bots = [make_bot(dedup=store) for store in stores]
    for bot, handler in zip(bots, handlers, strict=True):
        bot.on_c2c_message(handler)
        bot.on_group_mention(handler)
    for index in range(20):
        # Delivered twice, to the two workers, at the same time.
        body = c2c(f"k{index}") if index % 2 else group(seq=index)
        await asyncio.gather(bots[0].feed(body), bots[1].feed(body))
    assert len(handlers[0].events) + len(handlers[1].events) == 20
    assert bots[0].stats["duplicate"] + bots[1].stats["duplicate"] == 20
    keys = sorted(key.decode() for key in await redis.keys("*"))
    assert keys[0].startswith(f"app:callback:{SDKAPPID}:")
    ttl = await redis.pttl(f"app:callback:{SDKAPPID}:c2c:k1")
    assert 599_000 < ttl <= 600_000
    for store in stores:
        await store.client.aclose()


async def test_redis_store_from_a_url_owns_its_client(server: fakeredis.FakeServer) -> None:
    store = RedisDedupStore(
        "redis://fakeredis", prefix="p", connection_class=FakeAsyncRedisConnection, server=server
    )
    assert await store.claim("k", 1) is True
    assert await store.claim("k", 1) is False
    await store.release("k")
    assert await store.claim("k", 1) is True
    assert await fakeredis.FakeAsyncRedis(server=server).exists("p:callback:k") == 1
    await store.aclose()
    assert repr(store) == "RedisDedupStore(prefix='p', timeout=0.25)"


def test_redis_store_checks_its_arguments() -> None:
    with pytest.raises(ValidationError, match="timeout"):
        RedisDedupStore("redis://localhost", timeout=0)
    with pytest.raises(ValidationError, match="prefix"):
        RedisDedupStore("redis://localhost", prefix="")
    with pytest.raises(ValidationError, match="client"):
        RedisDedupStore(object())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="URL"):
        RedisDedupStore(fakeredis.FakeAsyncRedis(), socket_timeout=1)


async def test_a_saturated_callback_gives_its_redis_claim_back(
    server: fakeredis.FakeServer,
) -> None:
    store = RedisDedupStore(fakeredis.FakeAsyncRedis(server=server))
    bot = make_bot(dedup=store, max_handlers=1, max_backlog=0)
    gate = asyncio.Event()
    handler = Recorder(gate=gate)
    bot.on_c2c_message(handler)
    await bot.dispatch(query(), encode(c2c("first")))
    await handler.started.wait()
    assert answer(await bot.dispatch(query(), encode(c2c("second"))))[0] == 503
    gate.set()
    await bot.join()
    assert answer(await bot.feed(c2c("second")))[0] == 200
    assert [event.msg_key for event in handler.events] == ["first", "second"]


# --- outages -----------------------------------------------------------------------------


class BrokenStore:
    def __init__(self) -> None:
        self.broken = True
        self.inner = MemoryDedupStore()

    async def claim(self, key: str, ttl: float) -> bool:
        if self.broken:
            raise ConnectionError("store down")
        return await self.inner.claim(key, ttl)

    async def release(self, key: str) -> None:
        await self.inner.release(key)


async def test_a_store_outage_handles_events_anyway_counts_them_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    store = BrokenStore()
    bot = make_bot(dedup=store)
    handler = Recorder()
    bot.on_c2c_message(handler)
    for _ in range(5):
        assert answer(await bot.feed(c2c("k"))) == (200, OK)
    assert len(handler.events) == 5  # at least once: a redelivery may be handled twice
    assert bot.stats["dedup_unavailable"] == 5
    assert bot.stats["handled"] == 5
    failed = [r for r in caplog.records if "de-duplication store failed" in r.getMessage()]
    assert len(failed) == 1
    assert "ConnectionError: store down" in failed[0].getMessage()
    store.broken = False
    await bot.feed(c2c("k"))
    await bot.feed(c2c("k"))
    assert len(handler.events) == 6
    assert any("answers again" in r.getMessage() for r in caplog.records)


class HangingStore:
    async def claim(self, key: str, ttl: float) -> bool:
        await asyncio.Event().wait()
        return True

    async def release(self, key: str) -> None:
        return None


def test_a_store_that_hangs_is_an_outage_within_half_a_second() -> None:
    async def main(loop: VirtualClockLoop) -> float:
        bot = make_bot(dedup=HangingStore())
        handler = Recorder()
        bot.on_c2c_message(handler)
        started = loop.time()
        status, _ = answer(await bot.feed(c2c(), wait=False))
        waited = loop.time() - started
        await bot.join()
        assert status == 200
        assert len(handler.events) == 1
        assert bot.stats["dedup_unavailable"] == 1
        return waited

    assert run_virtual(main) == pytest.approx(0.5)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_at_a_closed_port_is_an_outage_not_a_failure() -> None:
    store = RedisDedupStore(f"redis://127.0.0.1:{_closed_port()}/0", timeout=0.2)
    bot = make_bot(dedup=store)
    handler = Recorder(result="answer")
    bot.on_c2c_message(handler)
    bot.on_group_mention(handler)
    bot.on_signal_message(handler)
    assert answer(await bot.feed(c2c()))[0] == 200
    assert answer(await bot.feed(group()))[0] == 200
    status, body = answer(await bot.dispatch(query(SIGNAL), encode(signal())))
    assert (status, body["RspData"]) == (200, "answer")
    await bot.join()
    assert len(handler.events) == 3
    assert bot.stats["dedup_unavailable"] == 3
    await store.aclose()


async def test_duplicate_signals_get_error_code_1_when_this_process_has_no_answer() -> None:
    store = MemoryDedupStore()
    first, second = make_bot(dedup=store), make_bot(dedup=store)
    first.on_signal_message(Recorder(result="the answer"))
    second.on_signal_message(Recorder(result="never"))
    assert (
        answer(await first.dispatch(query(SIGNAL), encode(signal())))[1]["RspData"] == "the answer"
    )
    status, body = answer(await second.dispatch(query(SIGNAL), encode(signal())))
    # Not ErrorCode 0 with an empty RspData: that would be a made-up success.
    assert (status, body["ErrorCode"], body["ErrorInfo"], body["RspData"]) == (
        200,
        1,
        "duplicate",
        "",
    )


def test_the_receiver_works_without_redis_installed() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys

        class NoRedis:
            def find_spec(self, name, path=None, target=None):
                if name == "redis" or name.startswith("redis."):
                    raise ImportError("no redis here")
                return None

        sys.meta_path.insert(0, NoRedis())
        from tencent_chat_robots.callbacks import RedisDedupStore, RobotCallbacks

        async def main():
            bot = RobotCallbacks(1400000000, token="t" * 32)
            seen = []

            @bot.on_c2c_message
            async def handler(event):
                seen.append(event.text)

            body = {"CallbackCommand": "Bot.OnC2CMessage", "From_Account": "u",
                    "To_Account": "@RBT#1", "MsgKey": "k",
                    "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}]}
            status, _, _ = await bot.feed(body)
            assert (status, seen) == (200, ["hi"]), (status, seen)
            try:
                RedisDedupStore("redis://localhost")
            except ImportError as error:
                print("needs redis:", error)

        asyncio.run(main())
        assert "redis" not in sys.modules
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "needs redis: RedisDedupStore needs redis-py" in done.stdout


async def test_the_default_store_keeps_claims_on_the_receivers_clock() -> None:
    clock = Clock()
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=clock, dedup_ttl=30)
    handler = Recorder()
    bot.on_c2c_message(handler)
    await bot.feed(c2c("k"))
    clock.now += 29.9
    await bot.feed(c2c("k"))
    clock.now += 0.1
    await bot.feed(c2c("k"))
    assert len(handler.events) == 2
    assert isinstance(bot.dedup, MemoryDedupStore)
