"""``chat.bulk(calls)``: a stream of calls made by a small pool of workers, one outcome each.

A worker takes the next item only when it is free, and no more than ``capacity`` items
are ever taken and not yet handed to the consumer: memory stays flat however long the
stream, and a slow consumer slows the calls rather than piling up outcomes. The pool
follows Little's law: the endpoints' rates times the shortest recent time a request
spent on the wire (with headroom), plus the calls sitting out a retry's backoff.

Stopping goes through the run's :class:`BulkGroup`, the scope its calls are made in:
``stop()`` ends the calls still waiting (they were not sent) and lets those on the wire
finish; ``cancel()`` ends those too. Either way each such call's outcome is a
:class:`BulkStoppedError` saying whether it may have reached the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Sized,
)
from typing import Any, Generic, TypeVar

import attrs

from ._background import Background
from ._calls import Call
from ._config import require_number
from ._endpoints import ENDPOINTS
from ._exceptions import BulkStoppedError, ClientClosedError, TencentChatError, ValidationError
from ._lifecycle import CallScope, Lifecycle, PendingCall
from ._observers import CallObserver
from ._redact import redact

__all__ = ["BulkGroup", "BulkOutcome", "BulkRun"]

T = TypeVar("T")

# The adaptive pool's ceiling (concurrency= may set more): a loop resuming more workers at
# once than this stalls for longer than a web handler sharing it should wait.
_MAX_WORKERS = 64
_MIN_WORKERS = 4
# Workers per request the rates keep on the wire at its shortest time there: for the
# network's jitter above that, and the calls between their permit and the wire.
_HEADROOM = 3.0
_SPARE = 4  # for the time between a worker's calls (taking the item, the permit)
_RESIZE_EVERY = 0.1  # seconds
_RECENT = 1.0  # an endpoint counts towards the pool while called in the last second
_END: Any = object()
_AGAIN: Any = object()


class BulkGroup(CallScope, CallObserver):
    """The calls of one bulk run: stopped together, and watched for what sizes its pool:
    time on the wire and calls waiting out a retry's backoff."""

    __slots__ = ("_older_min", "_samples", "_window_min", "backing_off")

    _WINDOW = 256  # answers per window of the shortest time on the wire

    def __init__(self) -> None:
        super().__init__()
        self.backing_off = 0
        self._older_min = self._window_min = math.inf
        self._samples = 0

    @property
    def wire_seconds(self) -> float:
        """The shortest time on the wire lately: the network's, without queueing.

        Not the mean: time waiting for a busy event loop to read the answer counts on
        the wire too, and a pool sized by it would grow the queue that made it.
        """
        shortest = min(self._older_min, self._window_min)
        return 0.0 if shortest == math.inf else shortest  # no answer yet: start small

    def attempt_ended(
        self,
        call: PendingCall,
        attempt: int,
        started: float,
        outcome: BaseException | None,
        request_id: str | None,
    ) -> None:
        self._window_min = min(self._window_min, asyncio.get_running_loop().time() - started)
        self._samples += 1
        if self._samples >= self._WINDOW:
            self._older_min, self._window_min, self._samples = self._window_min, math.inf, 0

    def backoff(self, waiting: bool) -> None:
        self.backing_off += 1 if waiting else -1


def _stopped_error(endpoint: str) -> BulkStoppedError:
    return BulkStoppedError(f"the bulk run was stopped; {endpoint} was not sent", endpoint=endpoint)


@attrs.frozen(slots=True)
class BulkOutcome(Generic[T]):
    """How one item of a bulk run ended: ``result`` if ``ok``, else ``error``.

    ``index`` is the item's position in ``calls`` (from 0) and ``call`` the item itself.
    An item that is not a :class:`Call` fails with a :class:`ValidationError`, unsent.
    """

    index: int
    call: Any
    result: T | None = None
    error: TencentChatError | None = None

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.error is None


class BulkRun:
    """The calls of ``chat.bulk(calls)``: iterate over it for their outcomes.

    Progress, readable at any time: ``total`` (``len(calls)`` when it has one, else the
    ``total`` given, else ``None``), ``taken`` (items read from ``calls``), ``done``,
    ``succeeded``, ``failed``, ``in_flight`` and ``workers``.

    Stopping: :meth:`stop` takes no more items and ends the calls still waiting for
    their turn, unsent; calls on the wire finish. :meth:`cancel` ends those too. Both
    still give every item taken its outcome (a :class:`BulkStoppedError` with
    ``request_sent`` for the ended ones), and the iteration then ends. Leaving the
    ``async for`` (``break``, an exception, a cancellation) cancels the run; ``async
    with chat.bulk(...) as run`` or :meth:`aclose` also waits for the workers to end,
    after which :attr:`undelivered` holds the outcomes never iterated over. Items from
    index ``taken`` on were never read from ``calls``. If the client is closed during
    the run, the items taken get their outcomes (:class:`ClientClosedError`) and the
    iteration then raises :class:`ClientClosedError`; an exception raised by ``calls``
    itself is raised likewise, after the outcomes of the items taken before it.
    """

    def __init__(
        self,
        calls: Iterable[Any] | AsyncIterable[Any],
        *,
        make: Callable[[Any, BulkGroup], Awaitable[Any]],
        lifecycle: Lifecycle,
        max_in_flight: int,
        rate_for: Callable[[str], float],
        ordered: bool = False,
        concurrency: int | None = None,
        total: int | None = None,
        background: Callable[[], Background] | None = None,
    ) -> None:
        if concurrency is not None:
            concurrency = require_number(
                "concurrency", concurrency, minimum=1, maximum=10_000, integer=True
            )
        if total is not None:
            total = require_number("total", total, minimum=0, integer=True)
        self._sync: Iterator[Any] | None = None
        self._async: AsyncIterator[Any] | None = None
        if isinstance(calls, AsyncIterable):
            self._async = aiter(calls)
        elif isinstance(calls, Iterable) and not isinstance(calls, (str, bytes)):
            self._sync = iter(calls)
            if total is None and isinstance(calls, Sized):
                total = len(calls)
        else:
            raise ValidationError(
                f"calls must be an iterable or async iterable of Call, got {type(calls).__name__}"
            )
        self.total = total
        self._make_call = make
        self._lifecycle = lifecycle
        self._unregister: Callable[[], None] | None = None
        self._ordered = ordered
        self._fixed = concurrency
        self._ceiling = concurrency or min(_MAX_WORKERS, max_in_flight * len(ENDPOINTS))
        self._capacity = 2 * self._ceiling  # items taken and not yet handed out
        self._rate_for = rate_for
        self._group = BulkGroup()
        self._new_background = background
        self._background: Background | None = None  # the run's own trace, once started

        self.taken = self.done = self.succeeded = self.failed = self.in_flight = 0
        self._handed = 0  # outcomes handed to the consumer
        self._ready: deque[BulkOutcome[Any]] = deque()
        self._by_index: dict[int, BulkOutcome[Any]] = {}  # ordered=True
        self._workers: set[asyncio.Task[None]] = set()
        self._holding: dict[asyncio.Task[Any], tuple[int, Any]] = {}  # a worker's item
        self._taking: set[asyncio.Task[Any]] = set()
        self._take_lock: asyncio.Lock | None = None
        self._news: asyncio.Event | None = None  # an outcome, or a worker ended
        self._room: deque[asyncio.Future[None]] = deque()  # workers waiting for room
        self._resizer: asyncio.Task[None] | None = None
        self._seen: dict[str, float] = {}
        self._target = self._fixed or _MIN_WORKERS
        self._started = self._iterated = False
        self._stopping = self._exhausted = self._client_closed = False
        self._error: BaseException | None = None  # raised when the outcomes are out

    def __repr__(self) -> str:
        return (
            f"<BulkRun taken={self.taken} done={self.done} succeeded={self.succeeded}"
            f" failed={self.failed} in_flight={self.in_flight} workers={self.workers}"
            f"{' stopped' if self.stopped else ''}>"
        )

    @property
    def workers(self) -> int:
        """Worker tasks running now."""
        return len(self._workers)

    @property
    def stopped(self) -> bool:
        """Whether the run takes no more items (stopped, cancelled, or ``calls`` ran out)."""
        return self._stopping or self._exhausted

    @property
    def undelivered(self) -> list[BulkOutcome[Any]]:
        """Outcomes made but not yet iterated over, by index (complete after :meth:`aclose`)."""
        return sorted([*self._ready, *self._by_index.values()], key=lambda o: o.index)

    # -- the consumer's side -----------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[BulkOutcome[Any]]:
        if self._iterated:
            raise TencentChatError("a bulk run is iterated once; call chat.bulk() again")
        self._iterated = True
        return _Outcomes(self)

    async def __aenter__(self) -> BulkRun:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def stop(self) -> None:
        """Take no more items; end the calls not yet on the wire; let the others finish."""
        self._halt(cancel_sent=False)

    def cancel(self) -> None:
        """Take no more items and end every call now, also those on the wire."""
        self._halt(cancel_sent=True)

    def _halt(self, *, cancel_sent: bool) -> None:
        self._stopping = True
        self._group.stop(cancel_sent=cancel_sent)
        for task in self._taking:  # waiting on ``calls`` itself: nothing was taken yet
            task.cancel()
        self._wake()

    async def aclose(self) -> None:
        """Cancel the run and wait until its workers have ended."""
        self.cancel()
        if self._started:
            self._finish()
        while self._workers:
            await asyncio.wait(set(self._workers))
        if self._started:
            self._finish()  # the run's span ends once its workers have

    async def _next(self) -> BulkOutcome[Any]:
        if not self._started:
            self._start()
        assert self._news is not None
        while True:
            outcome = self._pop_ready()
            if outcome is not None:
                self._handed += 1
                self._make_room(1)
                return outcome
            if not self._workers:
                if self.stopped:
                    break
                self._resize()  # defensive: a running run always keeps a worker
                if not self._workers:
                    break
                continue
            self._news.clear()
            await self._news.wait()
        self._finish()
        if self._by_index:  # ordered, past an item that had no outcome (the error's)
            self._ordered = False
            self._ready.extend(self.undelivered)
            self._by_index.clear()
            return await self._next()
        error, self._error = self._error, None
        if error is not None:
            raise error
        raise StopAsyncIteration

    def _pop_ready(self) -> BulkOutcome[Any] | None:
        if self._ordered:
            return self._by_index.pop(self._handed, None)
        return self._ready.popleft() if self._ready else None

    def _wake(self) -> None:
        if self._news is not None:
            self._news.set()
        self._make_room(len(self._room))

    def _make_room(self, n: int) -> None:
        """Wake ``n`` workers waiting for room (one per outcome handed out, not all)."""
        while n and self._room:
            waiter = self._room.popleft()
            if not waiter.done():
                waiter.set_result(None)
                n -= 1

    def _finish(self) -> None:
        if self._resizer is not None:
            self._resizer.cancel()
        self._end_background()
        if self._unregister is not None:
            self._unregister()
            self._unregister = None

    # -- the workers ---------------------------------------------------------------------

    def _start(self) -> None:
        self._started = True
        self._news, self._take_lock = asyncio.Event(), asyncio.Lock()
        if self._lifecycle.closed:
            self._stopping = self._client_closed = True
            self._error = self._closed_error()
            return
        # Told at once when the client closes: a worker may be waiting on ``calls``.
        self._unregister = self._lifecycle.on_close(self._note_closed)
        if self._new_background is not None:
            self._background = self._new_background()
        self._resize()
        if self._fixed is None:
            self._resizer = self._spawn(self._keep_resizing())

    def _resize(self) -> None:
        if self._fixed is None:
            now = asyncio.get_running_loop().time()
            recent = [e for e, t in self._seen.items() if now - t < _RECENT]
            rate = sum(map(self._rate_for, recent)) if recent else self._rate_for("")
            wanted = rate * self._group.wire_seconds * _HEADROOM + _SPARE + self._group.backing_off
            self._target = max(_MIN_WORKERS, math.ceil(min(self._ceiling, wanted)))
        while len(self._workers) < self._target and not self.stopped:
            task = self._spawn(self._work())
            self._workers.add(task)
            task.add_done_callback(self._worker_ended)

    def _end_background(self) -> None:
        """End the run's span once its last worker has: whoever sees that first."""
        if self._background is None or self._workers:
            return
        background, self._background = self._background, None
        attributes = {
            "tencent_chat.bulk.taken": self.taken,
            "tencent_chat.bulk.succeeded": self.succeeded,
            "tencent_chat.bulk.failed": self.failed,
            "tencent_chat.bulk.stopped": self._stopping,
        }
        background.end(attributes, self._error)

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        if self._background is None:
            return asyncio.create_task(coro)
        return self._background.spawn(coro)

    async def _keep_resizing(self) -> None:
        while not self.stopped:
            await asyncio.sleep(_RESIZE_EVERY)
            self._resize()

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        self._workers.discard(task)
        if self._news is not None:
            self._news.set()
        held = self._holding.pop(task, None)
        if held is not None:  # it died under a call (cancelled from inside it, say)
            index, item = held
            failure = TencentChatError(
                f"the call of item {index} ended without an outcome (its worker was"
                f" {'cancelled' if task.cancelled() else 'stopped by an error'})"
            )
            self._deliver(BulkOutcome(index, item, error=failure))
        if not task.cancelled() and task.exception() is not None:
            self._end_with(task.exception())  # a bug: raised to the consumer, not lost
        if self.stopped and not self._workers:
            self._finish()  # a consumer that left (break, cancelled) may never come back

    async def _work(self) -> None:
        while not self.stopped:
            if len(self._workers) > self._target:
                # The pool shrinks. Counted out now, not when the task is done: workers
                # woken together must not all see the same surplus and leave.
                self._workers.discard(asyncio.current_task())
                return
            if self._full():
                waiter = asyncio.get_running_loop().create_future()
                self._room.append(waiter)
                await waiter
                continue
            item = await self._take()
            if item is _END:
                return
            if item is _AGAIN:
                continue
            index = self.taken - 1
            task = asyncio.current_task()
            assert task is not None
            self._holding[task] = (index, item)  # if this worker dies, the item still ends
            outcome = await self._make(index, item)
            del self._holding[task]
            self._deliver(outcome)

    def _deliver(self, outcome: BulkOutcome[Any]) -> None:
        self.done += 1
        if outcome.error is None:
            self.succeeded += 1
        else:
            self.failed += 1
        if self._ordered:
            self._by_index[outcome.index] = outcome
        else:
            self._ready.append(outcome)
        assert self._news is not None
        self._news.set()

    async def _take(self) -> Any:
        """The next item of ``calls``, or ``_END`` when there is none to take."""
        if self._sync is not None:
            try:
                item = next(self._sync)
            except StopIteration:
                self._exhausted = True
                return _END
            except Exception as err:  # the caller's generator failed: raised after the rest
                self._end_with(err)
                return _END
        else:
            assert self._async is not None
            assert self._take_lock is not None
            async with self._take_lock:  # an async generator refuses two readers at once
                if self.stopped:
                    return _END
                if self._full():  # filled up while this worker waited for the lock
                    return _AGAIN
                task = asyncio.current_task()
                assert task is not None
                self._taking.add(task)
                try:
                    item = await self._async.__anext__()
                except StopAsyncIteration:
                    self._exhausted = True
                    return _END
                except Exception as err:
                    self._end_with(err)
                    return _END
                finally:
                    self._taking.discard(task)
        self.taken += 1
        return item

    def _full(self) -> bool:
        return self.taken - self._handed >= self._capacity

    def _end_with(self, error: BaseException | None) -> None:
        if self._error is None:
            self._error = error
        self.stop()

    async def _make(self, index: int, item: Any) -> BulkOutcome[Any]:
        if not isinstance(item, Call):  # nothing of it is read: any attribute may raise
            error = ValidationError(f"expected a Call, got {type(item).__name__}")
            return BulkOutcome(index, item, error=error)
        if self._group.stopping and not self._lifecycle.closed:
            # Stopped while this worker was taking the item: never started.
            return BulkOutcome(index, item, error=_stopped_error(item.endpoint))
        self._seen[item.endpoint] = asyncio.get_running_loop().time()
        self.in_flight += 1
        try:
            result = await self._make_call(item, self._group)
        except ClientClosedError as error:
            self._note_closed()
            return BulkOutcome(index, item, error=error)
        except TencentChatError as error:
            return BulkOutcome(index, item, error=error)
        except Exception as bug:  # not the SDK's (scrubbed under the call): ends the run
            self._end_with(bug)
            failure = TencentChatError(f"{type(bug).__name__} under the call: {redact(str(bug))}")
            failure.__cause__ = bug
            return BulkOutcome(index, item, error=failure)
        finally:
            self.in_flight -= 1
        return BulkOutcome(index, item, result=result)

    def _note_closed(self) -> None:
        if not self._client_closed:
            self._client_closed = True
            if self._error is None:
                self._error = self._closed_error()
            self.stop()

    def _closed_error(self) -> ClientClosedError:
        return ClientClosedError(
            "the client was closed during a bulk run; items from index"
            f" {self.taken} on were not taken"
        )


class _Outcomes(AsyncIterator[BulkOutcome[Any]]):
    """The iterator of one ``async for``; dropping it (``break``) cancels the run at once."""

    def __init__(self, run: BulkRun) -> None:
        self._run = run
        self._done = False

    async def __anext__(self) -> BulkOutcome[Any]:
        if self._done:
            raise StopAsyncIteration
        try:
            return await self._run._next()
        except BaseException:
            self._done = True
            self._run.cancel()  # the consumer is leaving (or the run ended): nothing runs on
            raise

    async def aclose(self) -> None:
        """Cancel the run and wait for its workers."""
        self._done = True
        await self._run.aclose()

    def __del__(self) -> None:
        if not self._done:
            # Collected after its event loop closed: nothing runs any more.
            with contextlib.suppress(RuntimeError):
                self._run.cancel()
