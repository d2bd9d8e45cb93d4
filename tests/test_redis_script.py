"""The Lua script through its typed binding, against fakeredis (with Lua).

Most tests move Redis's clock themselves (fakeredis reads ``time.time()`` for ``TIME``),
so every answer is exact to the microsecond. ``check_the_binding`` runs on Redis's own
clock instead, here and against a real redis-server (tests/redis_server).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from tencent_chat_robots._redis_script import (
    HORIZON,
    SCRIPT,
    Pace,
    Reply,
    ScriptBinding,
)

from .test_redis_limiter import SECOND_US, RedisClock, most_in_closed_window, redis_clock, sustained

T = TypeVar("T")

KEY = "tencent-chat-robots:1400000000:openim_robot_http_svc/get_all_robots"
T0 = 1_700_000_000 * SECOND_US  # where RedisClock starts


class Process:
    """One process on the script: a binding on a Redis client of its own, and (for the
    bulk line) when it is to ask next, following the script's answers to the µs."""

    def __init__(
        self, server: fakeredis.FakeServer, rate: float, burst: int = 2, name: str = ""
    ) -> None:
        self.client = fakeredis.FakeAsyncRedis(server=server)
        self.script = ScriptBinding(self.client)
        self.pace = Pace.of(rate, burst)
        self.name = name
        self.next_ask = 0

    async def ask(self, **options: Any) -> Reply:
        return await self.script.ask(KEY, self.pace, **options)

    async def pause(self, seconds: float) -> None:
        await self.script.pause(KEY, self.pace, seconds)

    async def state(self) -> dict[str, str]:
        """The schedule's hash."""
        raw = await self.client.hgetall(KEY)
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def line(self) -> list[str]:
        """The tokens in the bulk line, front first."""
        state = await self.state()
        head, tail = int(state.get("qh", 0)), int(state.get("qt", 0))
        return [state[f"q{i}"] for i in range(head, tail)]

    def follow(self, reply: Reply, now_us: int) -> None:
        """Ask next when told: at its turn (once its booked start has come), or when to
        ask again."""
        if reply.start_us is not None:
            turn = now_us + round((reply.next_turn or 0) * SECOND_US)
            self.next_ask = max(reply.start_us, turn)
        else:
            assert reply.retry_after is not None
            self.next_ask = now_us + round(reply.retry_after * SECOND_US)


def told_us(reply: Reply) -> int:
    """The µs a caller is told to wait: until its booked start, or to ask again."""
    wait = reply.start_in if reply.granted else reply.retry_after
    assert wait is not None
    return round(wait * SECOND_US)


def on_clock(main: Callable[[fakeredis.FakeServer, RedisClock], Awaitable[T]]) -> T:
    """Run ``main`` with a fresh fakeredis whose clock only moves when told."""

    async def body() -> T:
        with redis_clock() as clock:
            return await main(fakeredis.FakeServer(), clock)

    return asyncio.run(body())


# --- the binding ----------------------------------------------------------------------


def test_a_pace_is_the_scripts_units() -> None:
    assert Pace.of(190, 2) == Pace(interval_us=5264, tolerance_us=5264, capacity=190)
    assert Pace.of(7.5, 3) == Pace(interval_us=133_334, tolerance_us=266_668, capacity=7)
    # A key paced below 1/s (a 100/s API's share of rate=1.5) keeps a ring of one start.
    assert Pace.of(0.75, 2) == Pace(interval_us=1_333_334, tolerance_us=1_333_334, capacity=1)
    assert Pace.of(10, 1).interval == 0.1
    assert Pace.of(10, 1).horizon_us == HORIZON * 100_000


def test_each_reply_field_means_one_thing() -> None:
    booked = Reply(now_us=T0, start_us=T0 + 250_000)
    assert (booked.granted, booked.start_in) == (True, 0.25)
    refused = Reply(now_us=T0, predicted_wait=1.5)
    assert not refused.granted
    with pytest.raises(ValueError, match="nothing was booked"):
        refused.start_in  # noqa: B018


async def check_the_binding(client: Redis, key: str) -> None:
    """Every kind of answer, on Redis's own clock: each compared with what is exact in it
    (a booking is a whole interval after the last; a refusal books nothing)."""
    one, two, three, four = (ScriptBinding(client) for _ in range(4))
    assert len({b.token for b in (one, two, three, four)}) == 4  # four processes
    pace = Pace.of(10, 2)  # starts 0.1 s apart, two at once
    first = await one.ask(key, pace)
    second = await one.ask(key, pace)
    for reply in (first, second):  # the burst: both start now
        assert reply == Reply(now_us=reply.now_us, start_us=reply.now_us)  # no next_turn
        assert reply.start_in == 0
    third = await one.ask(key, pace)  # booked a whole interval after the last
    assert third.start_us == second.start_us + 100_000
    assert third.start_in == (third.start_us - third.now_us) / 1e6 > 0

    before = await client.hgetall(key)
    refused = await one.ask(key, pace, max_wait=0.0)  # its start is 0.1 s after the third
    predicted = (third.start_us + 100_000 - refused.now_us) / 1e6
    assert refused == Reply(now_us=refused.now_us, predicted_wait=predicted)
    assert await client.hgetall(key) == before  # nothing booked

    # Bulk: the first two in the line book (and, with more, rejoin it); the third waits.
    booked = [await b.ask(key, pace, bulk=True, more=True) for b in (two, three)]
    assert [r.start_us for r in booked] == [third.start_us + k * 100_000 for k in (1, 2)]
    assert all(r.next_turn is not None and r.next_turn >= 0 for r in booked)
    waiting = await four.ask(key, pace, bulk=True)
    assert waiting == Reply(now_us=waiting.now_us, retry_after=waiting.retry_after)
    assert waiting.retry_after > 0

    await one.pause(key, pace, 5.0)
    seconds, micros = await client.time()
    assert int(await client.hget(key, "tat") or 0) >= seconds * SECOND_US + micros + 4_900_000


async def test_the_binding_on_fakeredis() -> None:
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    try:
        await check_the_binding(client, KEY)
    finally:
        await client.aclose()


def test_a_process_forked_after_the_binding_was_made_joins_the_line_as_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    binding = ScriptBinding(fakeredis.FakeAsyncRedis())
    parent = binding.token
    assert binding.token == parent
    monkeypatch.setattr(os, "getpid", lambda: -1)
    child = binding.token
    assert child != parent
    assert binding.token == child


# --- pacing and the ring, on a Redis clock the test moves -----------------------------


def test_interactive_starts_are_booked_however_far_ahead() -> None:
    """10/s: a burst of two now, then each interactive ask is booked the next start, 0.1 s
    apart however far ahead, the ring holding the eleventh to 1.002 s; one that would
    miss its deadline is refused, booking nothing."""

    async def main(server: fakeredis.FakeServer, clock: RedisClock) -> None:
        process = Process(server, 10)
        t0 = clock.now_us
        assert await process.ask() == Reply(now_us=t0, start_us=t0)
        assert await process.ask() == Reply(now_us=t0, start_us=t0)  # the burst of two
        for n in range(1, 9):  # other processes asking at the same instant
            reply = await process.ask()
            assert reply == Reply(now_us=t0, start_us=t0 + n * 100_000)
            assert reply.start_in == n / 10
        before = await process.state()
        assert await process.ask(max_wait=0.95) == Reply(now_us=t0, predicted_wait=1.002)
        assert await process.state() == before
        assert await process.ask(max_wait=1.1) == Reply(now_us=t0, start_us=t0 + 1_002_000)

    on_clock(main)


def test_the_ring_caps_a_sliding_second_where_pacing_alone_would_not() -> None:
    """Burst 5 at 10/s: pacing allows an 11th start at 0.6 s, the ring holds it to 1 s."""

    async def main(server: fakeredis.FakeServer, clock: RedisClock) -> list[int]:
        process = Process(server, 10, burst=5)
        grants: list[int] = []
        while len(grants) < 12:
            reply = await process.ask()
            if reply.start_us is not None:
                grants.append(reply.start_us)
            else:
                clock.now_us += told_us(reply)
        return grants

    grants = on_clock(main)
    assert grants[10] - grants[0] == SECOND_US + 2_000  # the ring's 2 ms of margin
    assert most_in_closed_window(grants, SECOND_US) == 10


@pytest.mark.parametrize(("rate", "burst"), [(10, 5), (40, 2), (190, 2), (7.5, 3)])
def test_no_two_grants_rate_apart_are_a_second_or_less_apart(rate: float, burst: int) -> None:
    """A server counting arrivals in a closed second must never see ``rate + 1``.

    Each ask lands exactly when the script said (the ring's boundary, to the µs), the
    case where grant ``k + rate`` used to be exactly one second after grant ``k``.
    """

    async def main(server: fakeredis.FakeServer, clock: RedisClock) -> list[int]:
        process = Process(server, rate, burst)
        grants: list[int] = []
        while len(grants) < 3 * rate:
            reply = await process.ask()
            if reply.start_us is not None:
                grants.append(reply.start_us)
            clock.now_us += told_us(reply)
        return grants

    grants = on_clock(main)
    n = int(rate)
    assert min(grants[i + n] - grants[i] for i in range(len(grants) - n)) > SECOND_US
    assert most_in_closed_window(grants, SECOND_US) == n
    assert sustained(grants) >= 0.99 * n  # the margin costs 0.1%


def test_late_wakers_still_sustain_the_rate() -> None:
    """Each caller asks 1 ms after it is told to: the burst absorbs it, nothing is lost."""

    async def main(server: fakeredis.FakeServer, clock: RedisClock) -> list[int]:
        process = Process(server, 190)
        grants: list[int] = []
        while len(grants) < 400:
            reply = await process.ask()
            if reply.start_us is not None:
                grants.append(reply.start_us)
            clock.now_us += told_us(reply) + 1_000
        return grants

    grants = on_clock(main)
    assert most_in_closed_window(grants, SECOND_US) <= 190
    assert sustained(grants) >= 0.99 * 190


follow = st.tuples(st.just("follow"), st.integers(0, 3_000))  # ask when told, late by µs
idle = st.tuples(st.just("idle"), st.integers(0, 1_500_000))  # ask after any gap
other = st.tuples(st.just("other"), st.just(0))  # another process asks at the same instant
pause = st.tuples(st.just("pause"), st.integers(1, 2_000_000))


@settings(max_examples=30, deadline=None)
@given(
    rate=st.floats(min_value=1, max_value=60),
    burst=st.integers(min_value=1, max_value=4),
    steps=st.lists(st.one_of(follow, follow, follow, idle, other, pause), min_size=1, max_size=250),
)
def test_the_script_bound_holds_for_any_pattern_of_asks(
    rate: float, burst: int, steps: list[tuple[str, int]]
) -> None:
    async def main(server: fakeredis.FakeServer, clock: RedisClock) -> list[int]:
        process = Process(server, rate, burst)
        grants: list[int] = []
        told = 0
        for kind, amount in steps:
            if kind == "pause":
                await process.pause(amount / SECOND_US)
                continue
            clock.now_us += told + amount if kind == "follow" else amount
            reply = await process.ask()
            assert reply.now_us == clock.now_us
            if kind != "other":
                told = told_us(reply)
            if reply.start_us is not None:
                grants.append(reply.start_us)
        return grants

    grants = on_clock(main)
    assert grants == sorted(grants)  # booked or not, recorded in time order
    assert most_in_closed_window(grants, SECOND_US) <= int(rate)
    # Pacing: burst + 1 consecutive starts never share one interval.
    interval = math.ceil(SECOND_US / rate)
    assert all(grants[i + burst] - grants[i] >= interval for i in range(len(grants) - burst))


# --- the bulk line, on a Redis clock the test moves -----------------------------------


def test_bulk_processes_take_turns_at_one_call_per_start() -> None:
    """Four processes with bulk backlogs, each asking exactly when told and holding one
    booked start at a time: round robin, one script call per start, the rate sustained."""

    async def main(server: fakeredis.FakeServer, clock: RedisClock) -> tuple[list[Any], int]:
        processes = [Process(server, 50, name=name) for name in "ABCD"]
        grants: list[tuple[int, str]] = []
        calls = 0
        while len(grants) < 200:
            process = min(processes, key=lambda p: p.next_ask)
            clock.now_us = max(clock.now_us, process.next_ask)
            reply = await process.ask(bulk=True, more=True)
            calls += 1
            assert reply.predicted_wait is None
            if reply.start_us is not None:
                grants.append((reply.start_us, process.name))
            # Its next caller asks at its turn, once this one has started.
            process.follow(reply, clock.now_us)
        return grants, calls

    grants, calls = on_clock(main)
    times = [t for t, _ in grants]
    assert times == sorted(times)
    assert most_in_closed_window(times, SECOND_US) <= 50
    assert sustained(times) >= 0.99 * 50
    order = [name for _, name in grants]
    # Turn by turn (two neighbours may swap): every process in any six consecutive
    # starts, and as many starts each.
    assert all(len(set(order[i : i + 6])) == 4 for i in range(len(order) - 5))
    assert max(map(order.count, "ABCD")) - min(map(order.count, "ABCD")) <= 2  # the burst
    assert calls <= 200 + 4  # each process's first ask may only join the line


def test_interactive_is_booked_right_behind_the_bulk_bookings() -> None:
    """Bulk books at most three intervals ahead, so an interactive ask at any moment of
    a saturated line gets a start at most four intervals away; bulk goes on after it."""

    async def main(server: fakeredis.FakeServer, clock: RedisClock) -> list[float]:
        bulk = [Process(server, 100, name=name) for name in "ABC"]
        web = Process(server, 100)
        waits: list[float] = []
        interactive_at = clock.now_us + 50_000
        for _ in range(600):
            process = min(bulk, key=lambda p: p.next_ask)
            if interactive_at <= process.next_ask:
                clock.now_us = max(clock.now_us, interactive_at)
                reply = await web.ask()
                assert reply.granted
                waits.append(reply.start_in)
                interactive_at += 37_000  # off the beat of the 10 ms interval
                continue
            clock.now_us = max(clock.now_us, process.next_ask)
            process.follow(await process.ask(bulk=True, more=True), clock.now_us)
        return waits

    waits = on_clock(main)
    assert len(waits) >= 20
    assert max(waits) <= (HORIZON + 1) * 0.01 + 1e-6


def test_a_process_that_stops_asking_is_dropped_after_the_grace() -> None:
    """C dies holding an entry in the line. The others pass it at once (two of them may
    book), so no start is lost, and it is gone from the line once it is overdue."""

    async def main(server: fakeredis.FakeServer, clock: RedisClock) -> Any:
        a, b, c = (Process(server, 50, name=name) for name in "ABC")
        grants: list[int] = []
        for process in (c, a, b):  # C first: at the front of the line
            await process.ask(bulk=True, more=True)
            clock.now_us += 1
        line_before = await a.line()
        live = [a, b]
        for p in live:
            p.next_ask = clock.now_us
        while clock.now_us < T0 + 2 * SECOND_US:
            process = min(live, key=lambda p: p.next_ask)
            clock.now_us = max(clock.now_us, process.next_ask)
            reply = await process.ask(bulk=True, more=True)
            if reply.start_us is not None:
                grants.append(reply.start_us)
            process.follow(reply, clock.now_us)
        return grants, line_before, await a.line(), c.script.token

    grants, before, after, dead = on_clock(main)
    assert before[0] == dead
    assert dead not in after
    assert len(after) == 2
    gaps = [later - earlier for earlier, later in itertools.pairwise(grants)]
    assert max(gaps) <= 3 * 20_000  # a start or two missed, never a stall of the grace
    assert len(grants) >= 0.97 * 50 * 2


def test_a_bulk_ask_that_would_come_too_late_books_nothing_and_leaves_the_line() -> None:
    async def main(server: fakeredis.FakeServer, clock: RedisClock) -> None:
        ahead = [Process(server, 10) for _ in range(4)]
        late = Process(server, 10)
        for process in ahead:  # each with more callers: back in the line if it booked
            await process.ask(bulk=True, more=True)
        before = await late.state()
        line = await late.line()
        assert len(line) == 4
        # Two booked at once (the burst), so the next free start is 0.1 s ahead, and
        # four turns come before its own: 0.1 + 4 * 0.1002 s (the ring's spacing).
        reply = await late.ask(bulk=True, max_wait=0.45)
        assert reply == Reply(now_us=clock.now_us, predicted_wait=pytest.approx(0.5008))
        assert await late.state() == before  # it joined, and left again
        assert await late.line() == line

    on_clock(main)


ask = st.tuples(
    st.sampled_from(["A", "B", "C"]),
    st.sampled_from(["interactive", "bulk", "bulk-more"]),
    st.integers(0, 60_000),  # µs since the previous ask
    st.one_of(st.none(), st.integers(0, 300_000)),  # max_wait µs
)
pause_line = st.tuples(
    st.just("P"), st.just("pause"), st.integers(0, 5_000), st.integers(1, 500_000)
)


@settings(max_examples=40, deadline=None)
@given(
    rate=st.floats(min_value=5, max_value=60),
    steps=st.lists(st.one_of(ask, ask, ask, pause_line), min_size=1, max_size=200),
)
def test_the_bound_and_the_line_hold_for_any_mix_of_classes(
    rate: float, steps: list[tuple[str, str, int, int | None]]
) -> None:
    """Three processes asking in both classes, with deadlines and pauses, at any times:
    grants in time order, at most ``rate`` in any closed second, nothing booked past a
    deadline, and each process in the line at most once, its index matching."""

    async def main(server: fakeredis.FakeServer, clock: RedisClock) -> list[int]:
        processes = {name: Process(server, rate) for name in "ABC"}
        grants: list[int] = []
        for name, kind, gap, amount in steps:
            clock.now_us += gap
            if kind == "pause":
                await processes["A"].pause((amount or 1) / SECOND_US)
                continue
            reply = await processes[name].ask(
                bulk=kind != "interactive",
                max_wait=None if amount is None else amount / SECOND_US,
                more=kind == "bulk-more",
            )
            if reply.start_us is not None:
                assert amount is None or reply.start_us - clock.now_us <= amount
                grants.append(reply.start_us)
            state = await processes["A"].state()
            # A caller refused in mid-line leaves a gap there, skipped once it reaches
            # the front.
            line = {
                i: state[f"q{i}"]
                for i in range(int(state.get("qh", 0)), int(state.get("qt", 0)))
                if f"q{i}" in state
            }
            assert len(line) == len(set(line.values()))
            for i, token in line.items():
                assert state[f"w{token}"] == str(i)
        return grants

    grants = on_clock(main)
    assert grants == sorted(grants)
    assert most_in_closed_window(grants, SECOND_US) <= int(rate)


# --- old Redis ------------------------------------------------------------------------

# A stand-in for Redis's Lua API, as Redis 3.2-4.x behaves: a write after TIME (a
# non-deterministic command) is refused unless the script replicates its effects.
_LUA_REDIS = """
time_read, replicating, refuses_writes_after_time = false, false, true
redis = {}
function redis.replicate_commands() replicating = true; return true end
function redis.call(command, key, ...)
  if command == 'TIME' then time_read = true; return {'1700000000', '0'} end
  if command == 'HMGET' then return {false, false, false, false, false, false} end
  if command == 'HGET' then return false end
  if command == 'PTTL' then return -2 end
  if time_read and refuses_writes_after_time and not replicating then
    error('Write commands not allowed after non deterministic commands')
  end
  return 1
end
KEYS = {'k'}
ARGV = {'100000', '100000', '10', '1000000', '0', '300000', '100000', CLASS, '-1', 'tok', '0'}
"""


@pytest.mark.parametrize("priority", ["i", "b"], ids=["interactive", "bulk"])
def test_the_script_replicates_its_effects_on_old_redis(priority: str) -> None:
    lupa = pytest.importorskip("lupa.lua51")
    runtime = lupa.LuaRuntime()
    lua_redis = f"CLASS = '{priority}'" + _LUA_REDIS
    runtime.execute(lua_redis)
    assert list(runtime.execute(SCRIPT).values()) == [1, 0, 1_700_000_000_000_000, 0]
    # Redis 5+ replicates effects anyway; should a later one drop the call, no matter.
    runtime.execute(lua_redis + "redis.replicate_commands = nil; refuses_writes_after_time = false")
    assert list(runtime.execute(SCRIPT).values()) == [1, 0, 1_700_000_000_000_000, 0]
