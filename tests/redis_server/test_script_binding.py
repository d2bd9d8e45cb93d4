"""The script's typed binding on a real redis-server: Lua 5.1, its number conversions and
its own clock."""

from __future__ import annotations

from redis.asyncio import Redis

from tencent_chat_robots._redis_script import Pace, ScriptBinding

from ..test_redis_script import check_the_binding
from .conftest import RedisServer


async def test_the_binding_on_real_redis(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url)
    try:
        await check_the_binding(client, "binding:1400000000:svc/a")
    finally:
        await client.aclose()


async def test_the_binding_loads_the_script_again_after_a_flush(
    redis_server: RedisServer,
) -> None:
    client = Redis.from_url(redis_server.url)
    try:
        binding = ScriptBinding(client)
        pace = Pace.of(100, 2)
        assert (await binding.ask("binding:flushed", pace)).granted
        await client.script_flush()
        assert await client.script_exists(binding.sha) == [False]
        assert (await binding.ask("binding:flushed", pace)).granted  # NOSCRIPT, loaded, run
        assert await client.script_exists(binding.sha) == [True]
    finally:
        await client.aclose()
