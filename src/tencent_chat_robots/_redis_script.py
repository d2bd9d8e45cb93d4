"""The Lua script behind :class:`RedisRateLimiter` (one endpoint's shared schedule), and
its typed binding: :class:`ScriptBinding` calls it with named arguments and returns a
:class:`Reply` whose fields each mean one thing.

One atomic call per grant, booking, refusal or pause, reading the time with Redis
``TIME`` so that the hosts' clocks never enter into it. The rules and why they keep the
bound: docs/design/redis-limiter.md. What the script keeps, takes and answers is below.
"""

from __future__ import annotations

import math
import os
import secrets
from typing import TYPE_CHECKING

import attrs

from ._constants import WINDOW_MARGIN

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["GRACE", "HORIZON", "SCRIPT", "WINDOW_US", "Pace", "Reply", "ScriptBinding"]

# The ring's window: start k + floor(rate) is granted only more than a second after
# start k, by the same margin as in-process (see WINDOW_MARGIN for why).
WINDOW_US = round((1 + WINDOW_MARGIN) * 1_000_000)
# How far ahead (in intervals) a bulk start may be booked. A turn is told one interval
# less ahead, so a line that has fallen one interval behind still books on its first
# call; an interactive caller waits for at most this many bulk bookings.
HORIZON = 3
# A bulk turn missed by this much (s) is dropped from the line when it reaches the
# front: far above a live process's lateness (a timer, a round trip, a busy loop).
GRACE = 0.1

# KEYS[1]: one endpoint's schedule, a hash. Times are Redis TIME in microseconds, held
# as integers (exact in Lua's doubles) and written with %.0f, since tostring() would
# round them to 14 digits.
#   tat    GCRA theoretical arrival time of the next start
#   last   the newest grant time (a booked start may lie ahead of now)
#   head   index in the ring of the oldest of the last `capacity` grant times
#   0..capacity-1   that ring
#   qh, qt          the bulk line: entries qh .. qt-1, oldest first, are fields
#   q<i>            q<i> = a process's token, at most one entry per token;
#   w<token>, d<token>   the index of its entry, and when its turn was told to come.
# ARGV (built by ScriptBinding._call only): interval, tolerance ((burst - 1) * interval),
# capacity, window, pause, horizon, grace (µs); class ('i' or 'b'), max_wait (µs; -1:
# none), token, more ('1': the process has more bulk callers). Returns {status, wait,
# time, next}, which ScriptBinding.ask turns into a Reply:
#   1, wait 0: the caller starts now (time is now);
#   1, wait > 0: the start at `time` is booked for the caller, who sleeps `wait`; for
#     bulk with more, the process is back in the line, its turn in `next`;
#   0: nothing booked, ask again in `wait` (bulk only);
#   2: nothing booked: the start would come in `wait`, later than max_wait.
# Grants are recorded in time order (a new one is never before `last`), so the ring's
# oldest entry is also the `capacity`-th previous grant in time. A pause (ARGV[5] > 0)
# only pushes tat back; starts already booked keep their time.
SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end -- Redis 3.2-4.x
local key = KEYS[1]
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local pause = tonumber(ARGV[5])
local horizon = tonumber(ARGV[6])
local grace = tonumber(ARGV[7])
local bulk = ARGV[8] == 'b'
local max_wait = tonumber(ARGV[9])
local token = ARGV[10]
local more = ARGV[11] == '1'

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', key, 'tat', 'head', 'last', 'qh', 'qt', 'w' .. token)
local tat = tonumber(state[1]) or 0
local head = (tonumber(state[2]) or 0) % capacity
local last = tonumber(state[3]) or 0

local function us(t)
  return string.format('%.0f', t)
end

local function keep(until_us)
  -- Once tat, the newest grant's window and every turn told have passed, a missing key
  -- means the same. Only ever lengthened: another process's turn may need it longer.
  local ms = math.ceil((until_us - now) / 1000) + 1
  if redis.call('PTTL', key) < ms then
    redis.call('PEXPIRE', key, ms)
  end
end

if pause > 0 then
  tat = math.max(tat, now + pause + tolerance)
  redis.call('HSET', key, 'tat', us(tat))
  keep(math.max(tat, last + window))
  return {0, 0, now, 0}
end

local earliest = math.max(tat - tolerance, last)
local oldest = tonumber(redis.call('HGET', key, tostring(head)))
if oldest then
  earliest = math.max(earliest, oldest + window)
end
local start = now
if earliest > now then
  -- A booked start keeps a full interval from the previous one: the burst tolerance
  -- is for callers that come late, not for clumping bookings together.
  start = math.max(earliest, last + interval)
end

local function book()
  tat = math.max(tat, start) + interval
  redis.call('HSET', key, 'tat', us(tat),
    tostring(head), us(start), 'head', tostring((head + 1) % capacity), 'last', us(start))
  keep(math.max(tat, start + window))
end

if not bulk then
  if max_wait >= 0 and start - now > max_wait then
    return {2, start - now, now, 0}
  end
  book()
  return {1, start - now, start, 0}
end

local qh = tonumber(state[4]) or 0
local qt = tonumber(state[5]) or 0
local mine = tonumber(state[6])
-- Starts come this far apart when the ring is the binding rule (1.002 s / capacity).
local spacing = math.max(interval, math.ceil(window / capacity))
local lead = horizon - interval

-- A front entry whose process missed its turn by more than the grace is dropped.
while qh < qt do
  local front = redis.call('HGET', key, 'q' .. qh)
  if front == token then
    break
  end
  if front then
    if now <= (tonumber(redis.call('HGET', key, 'd' .. front)) or 0) + grace then
      break
    end
    redis.call('HDEL', key, 'w' .. front, 'd' .. front)
  end
  redis.call('HDEL', key, 'q' .. qh)
  qh = qh + 1
end

local function join()
  mine = qt
  qt = qt + 1
  redis.call('HSET', key, 'q' .. mine, token, 'w' .. token, tostring(mine))
end

local function leave(booked)
  redis.call('HDEL', key, 'w' .. token, 'd' .. token)
  if mine == qh then
    redis.call('HDEL', key, 'q' .. qh)
    qh = qh + 1
  elseif mine == qt - 1 then
    redis.call('HDEL', key, 'q' .. mine)
    qt = qt - 1
  elseif booked then
    -- The front takes this one's place, leaving no gap: a swap of neighbours, or the
    -- front moving back for having let a free start pass.
    local front = redis.call('HGET', key, 'q' .. qh)
    redis.call('HSET', key, 'q' .. mine, front, 'w' .. front, tostring(mine))
    redis.call('HDEL', key, 'q' .. qh)
    qh = qh + 1
  else
    redis.call('HDEL', key, 'q' .. mine) -- a gap, skipped once it reaches the front
  end
end

if not mine then
  join()
end
local ahead = mine - qh
-- Its turn: when the ones ahead have each had a start. One of the first two books; so
-- does anyone finding a start free now that the ones ahead have not taken.
local can_book = start - now <= horizon and (ahead < 2 or start <= now)
local at = start + ahead * spacing
if can_book then
  at = start
end
local told = now
local reply
if max_wait >= 0 and at - now > max_wait then
  if not more then
    leave(false)
  end
  reply = {2, at - now, now, 0}
elseif can_book then
  book()
  leave(true)
  local next = 0
  if more then
    join()
    told = start + (mine - qh + 1) * spacing - lead
    redis.call('HSET', key, 'd' .. token, us(told))
    next = math.max(told - now, 0)
  end
  reply = {1, start - now, start, next}
else
  told = at - lead
  redis.call('HSET', key, 'd' .. token, us(told))
  reply = {0, told - now, now, 0}
end
redis.call('HSET', key, 'qh', tostring(qh), 'qt', tostring(qt))
keep(math.max(told, now) + grace)
return reply
"""

# The script's status codes (0: nothing booked, ask again later).
_GRANTED, _TOO_LATE = 1, 2


@attrs.frozen
class Pace:
    """One key's rules, in the script's units: from its rate and burst (see :meth:`of`)."""

    interval_us: int  # between starts
    tolerance_us: int  # how far a late caller may catch up: (burst - 1) intervals
    capacity: int  # the ring's size: the most starts in any sliding second

    @classmethod
    def of(cls, rate: float, burst: int) -> Pace:
        # Rounding the interval up errs on the slow side; the ring keeps the bound exact.
        interval = math.ceil(1_000_000 / rate)
        # A ring of at least one start: a key paced below 1/s (a 100/s API's share of a
        # low rate) keeps its last start, as the in-process limiter does.
        return cls(interval, (burst - 1) * interval, max(1, int(rate)))

    @property
    def interval(self) -> float:
        """Seconds between starts."""
        return self.interval_us / 1e6

    @property
    def horizon_us(self) -> int:
        """How far ahead of now bulk starts may be booked."""
        return HORIZON * self.interval_us


@attrs.frozen
class Reply:
    """The script's answer to one ask. Exactly one of ``start_us``, ``retry_after`` and
    ``predicted_wait`` is set (``next_turn`` only with ``start_us``); seconds count from
    ``now_us``."""

    now_us: int  # Redis's TIME when the script ran (µs)
    start_us: int | None = None  # the start booked for the caller (µs); None: none
    # Booked, for a bulk process with more callers (back in the line): s until its turn.
    next_turn: float | None = None
    retry_after: float | None = None  # bulk, not its turn: s until it should ask again
    predicted_wait: float | None = None  # refused for max_wait: s its start was away

    @property
    def granted(self) -> bool:
        return self.start_us is not None

    @property
    def start_in(self) -> float:
        """Seconds from ``now_us`` to the booked start (0: start now); granted only."""
        if self.start_us is None:
            raise ValueError("nothing was booked")
        return (self.start_us - self.now_us) / 1e6


class ScriptBinding:
    """The script on one Redis client, for this process: its calls by name.

    ``key`` is the Redis key of one endpoint's schedule. The script is loaded again by
    redis-py when Redis answers NOSCRIPT (restarted or flushed), so callers need not.
    """

    def __init__(self, client: Redis) -> None:
        self._script = client.register_script(SCRIPT)
        self._tokens = (os.getpid(), secrets.token_hex(8))

    @property
    def sha(self) -> str:
        """The script's SHA1, as ``SCRIPT EXISTS`` knows it."""
        return self._script.sha

    @property
    def token(self) -> str:
        """This process's entry in the bulk lines: drawn anew in a process forked after
        construction (e.g. gunicorn --preload), which would otherwise share its parent's."""
        pid, token = self._tokens
        if pid != os.getpid():
            self._tokens = pid, token = os.getpid(), secrets.token_hex(8)
        return token

    async def ask(
        self,
        key: str,
        pace: Pace,
        *,
        bulk: bool = False,
        max_wait: float | None = None,
        more: bool = False,
    ) -> Reply:
        """Ask for a start: booked (``start_us``), refused for ``max_wait`` (seconds;
        ``predicted_wait``) or, for ``bulk``, not yet its turn (``retry_after``).

        An interactive caller is booked the next free start however far ahead; a bulk
        one joins the line, books on its turn, and with ``more`` (this process has more
        bulk callers) rejoins the line in the same call (``next_turn``).
        """
        max_wait_us = -1 if max_wait is None else max(0, math.floor(max_wait * 1e6))
        status, wait_us, time_us, next_us = await self._call(
            key, pace, 0, "b" if bulk else "i", max_wait_us, more
        )
        if status == _GRANTED:
            next_turn = next_us / 1e6 if bulk and more else None
            return Reply(time_us - wait_us, start_us=time_us, next_turn=next_turn)
        if status == _TOO_LATE:
            return Reply(time_us, predicted_wait=wait_us / 1e6)
        return Reply(time_us, retry_after=wait_us / 1e6)

    async def pause(self, key: str, pace: Pace, seconds: float) -> None:
        """Start nothing of ``key`` for ``seconds`` (at least a µs), in the whole fleet."""
        await self._call(key, pace, max(1, round(seconds * 1e6)), "i", -1, False)

    async def _call(
        self, key: str, pace: Pace, pause_us: int, kind: str, max_wait_us: int, more: bool
    ) -> tuple[int, int, int, int]:
        reply = await self._script(
            keys=[key],
            args=[
                pace.interval_us,
                pace.tolerance_us,
                pace.capacity,
                WINDOW_US,
                pause_us,
                pace.horizon_us,
                round(GRACE * 1e6),
                kind,
                max_wait_us,
                self.token,
                int(more),
            ],
        )
        status, wait_us, time_us, next_us = (int(value) for value in reply)
        return status, wait_us, time_us, next_us
