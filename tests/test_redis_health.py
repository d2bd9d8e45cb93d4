"""RedisHealth alone: retries within the budget, the cooldown, the fallback; on a virtual
clock, with attempts that fail as told instead of a Redis."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tencent_chat_robots import Endpoint, LimiterUnavailableError
from tencent_chat_robots._redis_health import RedisHealth
from tencent_chat_robots._redis_settings import RedisLimiterSettings

from ._virtual_time import VirtualClockLoop, run_virtual

T = TypeVar("T")


def health(**options: Any) -> RedisHealth:
    options.setdefault("rate", 100)
    return RedisHealth(RedisLimiterSettings(**options))


def on_loop(main: Callable[[VirtualClockLoop], Awaitable[T]]) -> T:
    return run_virtual(main)


def failing(times: int, loop: VirtualClockLoop, tries: list[float]) -> Callable[[], Any]:
    """An attempt refused ``times`` times, then answered; ``tries`` gets each try's time."""

    async def attempt() -> str:
        tries.append(loop.time())
        if len(tries) <= times:
            raise RedisConnectionError("Connection reset by peer")
        return "answer"

    return attempt


async def hung() -> None:
    await asyncio.Event().wait()


def test_a_transient_failure_is_tried_again_with_backoff_within_the_budget() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        watched = health(retry_budget=1.0)
        tries: list[float] = []
        assert await watched.call(failing(2, loop, tries)) == "answer"
        assert (watched.failed_tries, watched.given_up, watched.last_error) == (2, 0, None)
        assert not watched.is_down()
        # Jittered in the upper half of 50 ms, then of 100 ms.
        gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
        assert 0.025 <= gaps[0] <= 0.05
        assert 0.05 <= gaps[1] <= 0.1

    on_loop(main)


def test_past_the_budget_redis_is_down_for_the_cooldown(caplog: pytest.LogCaptureFixture) -> None:
    """Each try of a hung Redis is cut at the time-out; after the budget the failure is
    raised, and callers hold off: new ones for the cooldown, those that waited through
    the failed call at least as long as it took."""

    async def main(loop: VirtualClockLoop) -> None:
        watched = health(timeout=0.3, retry_budget=0.5, cooldown=0.1)
        began = loop.time()
        with pytest.raises(TimeoutError):
            await watched.call(hung)
        assert 0.5 <= loop.time() - began <= 0.8
        assert watched.given_up == 1
        assert isinstance(watched.last_error, TimeoutError)
        assert watched.is_down()
        assert watched.is_down(since=0)  # queued before it failed
        await asyncio.sleep(0.1)
        assert not watched.is_down()  # the cooldown is over...
        assert not watched.is_down(since=1)  # ...for callers that came after the failure
        assert watched.is_down(since=0)  # the last try took 0.3 s: longer
        await asyncio.sleep(0.2)
        assert not watched.is_down(since=0)

    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    on_loop(main)
    assert [r.getMessage() for r in caplog.records] == [
        "Redis rate limiter unavailable (TimeoutError: )"
    ]


def test_a_failure_that_is_not_transient_is_given_up_on_at_once() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        watched = health()
        error = ResponseError("ERR user_script:1: Script attempted to access nonexistent global")

        async def broken() -> None:
            raise error

        with pytest.raises(ResponseError):
            await watched.call(broken)
        assert (watched.failed_tries, watched.given_up, watched.last_error) == (1, 1, error)

    on_loop(main)


def test_while_down_one_try_tells_whether_redis_is_back(caplog: pytest.LogCaptureFixture) -> None:
    async def main(loop: VirtualClockLoop) -> None:
        watched = health(retry_budget=1.0, cooldown=0)
        tries: list[float] = []
        attempt = failing(100, loop, tries)
        with pytest.raises(RedisConnectionError):
            await watched.call(attempt)  # the whole budget
        tried = len(tries)
        with pytest.raises(RedisConnectionError):
            await watched.call(attempt)  # down: one try, no budget
        assert len(tries) == tried + 1

        async def answered() -> str:
            return "answer"

        assert await watched.call(answered) == "answer"
        assert watched.last_error is None
        assert not watched.is_down(since=0)

    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    on_loop(main)
    assert "answers again" in caplog.records[-1].getMessage()


def test_without_redis_raises_the_typed_error_caused_by_the_failure() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        watched = health(retry_budget=0)
        with pytest.raises(RedisConnectionError):
            await watched.call(failing(1, loop, []))
        with pytest.raises(LimiterUnavailableError, match="ConnectionError") as raised:
            await watched.without_redis("svc/a", "interactive", None)
        assert raised.value.__cause__ is watched.last_error

    on_loop(main)


def test_the_local_fallback_paces_each_key_at_its_share_of_its_own_pace() -> None:
    local = health(rate=950, fallback="local", fleet_size=4).local
    assert local is not None
    assert local.rate_for(Endpoint.LIVE_ROOM_ADD_ROBOT) == 25  # 100/s documented: capped
    assert local.rate_for(Endpoint.GET_ALL_ROBOTS) == 50  # 200/s documented: capped
    assert local.rate_for("svc/mine") == 950 / 4
    assert health(fallback="error").local is None


def test_a_pause_is_applied_locally_and_logged_when_redis_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main(loop: VirtualClockLoop) -> float:
        watched = health(fallback="local", fleet_size=1, retry_budget=0)
        with pytest.raises(RedisConnectionError):
            await watched.call(failing(1, loop, []))
        told: list[float] = []

        async def tell_redis() -> None:
            told.append(seconds)

        seconds = 0.25
        await watched.pause("svc/a", seconds, tell_redis)  # down: Redis is not told
        assert told == []
        assert watched.local is not None
        began = loop.time()
        await watched.local.acquire("svc/a")
        return loop.time() - began

    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    assert on_loop(main) == pytest.approx(0.25)
    assert "paused in this process only" in caplog.records[-1].getMessage()
