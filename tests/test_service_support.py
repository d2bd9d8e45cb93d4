"""What a web service leans on: views that cannot close the app's client, ``health()``
for a readiness route, and bulk runs in a trace and a Sentry scope of their own."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import sentry_sdk
from opentelemetry import trace

from tencent_chat_robots import (
    BulkRun,
    Call,
    ClientHealth,
    LimiterUnavailableError,
    RawResponse,
    RedisRateLimiter,
    TencentChat,
    ValidationError,
)

from ._virtual_time import VirtualClockLoop, run_virtual
from .conftest import SDKAPPID, SECRET_KEY, OTel, ScriptedTransport


def _chat(transport: Any, **options: Any) -> TencentChat:
    return TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport, **options)


class Held:
    """A transport whose answers wait until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()
        self.sent = 0

    async def until_sent(self, n: int) -> None:
        while self.sent < n:
            self.arrived.clear()
            await self.arrived.wait()

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
        self.sent += 1
        self.arrived.set()
        await self.release.wait()
        return RawResponse(200, b'{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}')

    async def aclose(self) -> None:
        pass


# -- views -----------------------------------------------------------------------------


async def test_a_view_in_async_with_is_refused_and_the_client_stays_open() -> None:
    transport = ScriptedTransport()
    async with _chat(transport, rate_limit=None) as chat:
        view = chat.with_options(max_wait=0.5, deadline=1.0)
        with pytest.raises(ValidationError, match="cannot be closed; close the client"):
            async with view:
                pass
        with pytest.raises(ValidationError, match=r"aclose\(\) of a view"):
            await view.aclose()
        with pytest.raises(ValidationError, match="view"):
            await view.with_options(priority="bulk").aclose()  # a view of a view too
        assert not chat.closed
        assert not view.closed
        await view.delete_robot("@RBT#1")  # both still send
        await chat.delete_robot("@RBT#1")
    assert chat.closed
    assert view.closed


# -- health ----------------------------------------------------------------------------


def test_health_of_an_idle_client_and_after_closing() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[ClientHealth, ClientHealth]:
        chat = _chat(ScriptedTransport())
        before = chat.health()
        await chat.aclose()
        return before, chat.health()

    before, after = run_virtual(main)
    assert before == ClientHealth(closed=False, limiter="local")
    assert before.ready
    assert after.closed
    assert not after.ready
    assert after.as_dict() == {
        "ready": False,
        "closed": True,
        "limiter": "local",
        "redis": None,
        "redis_down_since": None,
        "redis_error": None,
        "waiting": {},
        "in_flight": {},
        "open_streams": 0,
    }
    json.dumps(after.as_dict())  # JSON-ready


def test_health_counts_calls_waiting_and_on_the_wire_per_api() -> None:
    async def main(loop: VirtualClockLoop) -> ClientHealth:
        held = Held()
        async with _chat(held, rate_limit=2) as chat:
            calls = [asyncio.ensure_future(chat.delete_robot(f"@RBT#{i}")) for i in range(5)]
            calls.append(asyncio.ensure_future(chat.add_robot_to_room("room", "@RBT#1")))
            await held.until_sent(3)  # two delete_robot permits this second, one add_robot
            health = chat.health()
            held.release.set()
            await asyncio.gather(*calls)
            return health

    health = run_virtual(main)
    assert health.in_flight == {"delete_robot": 2, "add_robot_to_room": 1}
    assert health.waiting == {"delete_robot": 3}


def test_health_names_the_limiter() -> None:
    class Custom:
        async def acquire(self, key: str) -> None:
            pass

    assert _chat(ScriptedTransport(), rate_limit=None).health().limiter == "none"
    assert _chat(ScriptedTransport(), limiter=Custom()).health().limiter == "custom"


class _Broken(fakeredis.FakeAsyncRedis):  # type: ignore[misc]
    """A Redis that stops answering when told."""

    down = False

    async def evalsha(self, *args: Any, **kwargs: Any) -> Any:
        if _Broken.down:
            from redis.exceptions import ConnectionError as RedisConnectionError

            raise RedisConnectionError("Connection refused")
        return await super().evalsha(*args, **kwargs)


@pytest.fixture
def broken_redis() -> Iterator[type[_Broken]]:
    _Broken.down = False
    yield _Broken
    _Broken.down = False


@pytest.mark.parametrize(
    ("fallback", "state", "ready"), [(None, "down", False), ("local", "fallback", True)]
)
def test_health_reports_a_redis_outage_and_its_end(
    broken_redis: type[_Broken], fallback: str | None, state: str, ready: bool
) -> None:
    options: dict[str, Any] = {"rate": 100, "retry_budget": 0, "cooldown": 1.0}
    if fallback is not None:
        options.update(fallback=fallback, fleet_size=2)

    async def main(loop: VirtualClockLoop) -> tuple[ClientHealth, ...]:
        limiter = RedisRateLimiter(broken_redis(), **options)
        async with _chat(ScriptedTransport(), limiter=limiter) as chat:
            await chat.delete_robot("@RBT#1")
            up = chat.health()
            broken_redis.down = True
            with contextlib.suppress(LimiterUnavailableError):  # no fallback: tested elsewhere
                await chat.delete_robot("@RBT#2")
            down = chat.health()
            broken_redis.down = False
            await asyncio.sleep(1.01)  # the cool-down: Redis is asked again after it
            await chat.delete_robot("@RBT#3")
            return up, down, chat.health()

    before = time.time()
    up, down, back = run_virtual(main)
    assert (up.limiter, up.redis, up.redis_down_since, up.ready) == ("redis", "up", None, True)
    assert (down.redis, down.ready, down.redis_error) == (state, ready, "ConnectionError")
    assert down.redis_down_since is not None
    assert before <= down.redis_down_since <= time.time()
    assert (back.redis, back.redis_down_since, back.redis_error) == ("up", None, None)


def _from_a_thread(chat: TencentChat) -> ClientHealth | BaseException:
    """``chat.health()`` as a readiness route run in a thread pool reads it."""
    seen: list[ClientHealth | BaseException] = []

    def probe() -> None:
        try:
            seen.append(chat.health())
        except BaseException as err:
            seen.append(err)

    worker = threading.Thread(target=probe)
    worker.start()
    worker.join()
    return seen[0]


def test_health_after_the_cooldown_is_recovering_and_ready_without_a_call() -> None:
    """A readiness probe that kept the pod out until a call cleared the outage would
    keep the calls away for ever. Read in the loop and from another thread alike."""

    async def main(loop: VirtualClockLoop) -> list[tuple[str | None, bool, str | None]]:
        _Broken.down = True
        limiter = RedisRateLimiter(_Broken(), rate=100, retry_budget=0, cooldown=1.0)
        seen = []

        def now() -> tuple[str | None, bool, str | None]:
            other = _from_a_thread(chat)
            assert isinstance(other, ClientHealth), repr(other)
            return chat.health().redis, chat.health().ready, other.redis

        async with _chat(ScriptedTransport(), limiter=limiter) as chat:
            with contextlib.suppress(LimiterUnavailableError):
                await chat.delete_robot("@RBT#1")
            seen.append(now())
            _Broken.down = False
            await asyncio.sleep(1.01)
            seen.append(now())
            await chat.delete_robot("@RBT#2")
            seen.append(now())
        return seen

    try:
        assert run_virtual(main) == [
            ("down", False, "down"),
            ("recovering", True, "recovering"),
            ("up", True, "up"),
        ]
    finally:
        _Broken.down = False


# -- a bulk run's own trace ----------------------------------------------------------


async def test_a_bulk_run_is_a_new_trace_linked_to_the_request_that_started_it(
    otel: OTel,
) -> None:
    tracer = trace.get_tracer("test")
    async with _chat(ScriptedTransport(), rate_limit=None) as chat:
        with tracer.start_as_current_span("POST /jobs") as request:
            await chat.get_all_robots()  # awaited in the request: stays in its trace
            run = chat.bulk([Call.delete_robot(f"@RBT#{i}") for i in range(3)])
            outcomes = run.__aiter__()
            first = await outcomes.__anext__()
        # The request has answered; the run goes on.
        rest = [outcome async for outcome in outcomes]
    assert first.error is None
    assert all(o.error is None for o in rest)
    spans = otel.spans()
    request_ctx = request.get_span_context()
    (bulk,) = [s for s in spans if s.name == "tencent_chat.bulk"]
    (single,) = [s for s in spans if s.name == "tencent_chat get_all_robots"]
    deletes = [s for s in spans if s.name == "tencent_chat delete_robot"]
    assert single.parent.span_id == request_ctx.span_id
    assert bulk.parent is None  # a root
    assert bulk.context.trace_id != request_ctx.trace_id
    assert [link.context.span_id for link in bulk.links] == [request_ctx.span_id]
    assert len(deletes) == 3
    assert all(s.parent.span_id == bulk.context.span_id for s in deletes)
    assert bulk.attributes["tencent_chat.bulk.taken"] == 3
    assert bulk.attributes["tencent_chat.bulk.succeeded"] == 3
    assert bulk.attributes["tencent_chat.bulk.failed"] == 0
    assert bulk.attributes["tencent_chat.priority"] == "bulk"
    assert bulk.kind == trace.SpanKind.INTERNAL
    assert bulk.end_time >= max(s.end_time for s in deletes)


async def settled(run: Any) -> None:
    while run.workers:
        await asyncio.wait(set(run._workers))


async def test_a_bulk_run_left_by_its_consumer_is_let_go_when_its_workers_end() -> None:
    """The client keeps no run whose consumer broke off (a hook to end it on close held
    each one, and its outcomes, until the client closed)."""
    async with _chat(ScriptedTransport(), rate_limit=None) as chat:
        left: list[weakref.ref[BulkRun]] = []
        for _ in range(3):
            run = chat.bulk([Call.delete_robot(f"@RBT#{i}") for i in range(50)])
            async for _ in run:
                break
            await settled(run)
            left.append(weakref.ref(run))
        del run
        gc.collect()
        assert [ref() for ref in left] == [None, None, None]


async def test_a_bulk_run_ended_by_the_callers_error_keeps_secrets_out_of_its_span(
    otel: OTel,
) -> None:
    def rows() -> Iterator[Call[Any]]:
        yield Call.delete_robot("@RBT#1")
        raise RuntimeError(f"the job's database refused postgres://app:{SECRET_KEY}@db")

    async with _chat(ScriptedTransport(), rate_limit=None) as chat:
        with pytest.raises(RuntimeError):
            async for _ in chat.bulk(rows()):
                pass
    (span,) = [s for s in otel.spans() if s.name == "tencent_chat.bulk"]
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "RuntimeError"
    assert SECRET_KEY not in str(span.status.description)
    assert "the job's database refused" in str(span.status.description)


async def test_a_bulk_run_left_by_its_consumer_ends_its_span_when_its_workers_do(
    otel: OTel,
) -> None:
    def bulk_spans() -> list[Any]:
        return [s for s in otel.spans() if s.name == "tencent_chat.bulk"]

    chat = _chat(ScriptedTransport(), rate_limit=None)
    calls = [Call.delete_robot(f"@RBT#{i}") for i in range(50)]
    broken = chat.bulk(calls)
    async for _ in broken:
        break  # documented: dropping the iteration cancels the run
    await settled(broken)
    assert len(bulk_spans()) == 1

    cancelled = chat.bulk(calls)
    got_one = asyncio.Event()

    async def consume() -> None:
        async for _ in cancelled:
            got_one.set()
            await asyncio.Event().wait()

    consumer = asyncio.ensure_future(consume())
    await got_one.wait()
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    await settled(cancelled)
    assert len(bulk_spans()) == 2

    closing = chat.bulk(calls)
    await closing.__aiter__().__anext__()
    await chat.aclose()  # the consumer is elsewhere, and never comes back
    await settled(closing)
    spans = bulk_spans()
    assert len(spans) == 3
    assert spans[2].attributes["tencent_chat.bulk.stopped"] is True
    assert spans[2].attributes["error.type"] == "ClientClosedError"
    assert spans[2].status.status_code.name == "ERROR"


async def test_a_bulk_run_closed_early_still_ends_its_span(otel: OTel) -> None:
    held = Held()
    async with _chat(held, rate_limit=None) as chat:
        run = chat.bulk([Call.delete_robot(f"@RBT#{i}") for i in range(10)])
        waiting = asyncio.ensure_future(run.__aiter__().__anext__())
        await held.until_sent(1)
        await run.aclose()
        waiting.cancel()
    assert [s.name for s in otel.spans()].count("tencent_chat.bulk") == 1


class _Events(sentry_sdk.transport.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Any) -> None:
        for item in envelope.items:
            event = item.get_event() or item.get_transaction_event()
            if event is not None:
                self.events.append(event)


async def test_sentry_events_from_a_bulk_runs_calls_are_not_filed_under_the_request() -> None:
    events = _Events()
    sentry_sdk.init(dsn="https://k@o0.ingest.sentry.io/0", transport=events, traces_sample_rate=1.0)
    try:

        def report(request: Any) -> dict[str, Any]:
            sentry_sdk.capture_message(f"inside {request.body.get('Robot_Account', 'single')}")
            return {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}

        with sentry_sdk.isolation_scope():
            async with _chat(ScriptedTransport(answer=report), rate_limit=None) as chat:
                with sentry_sdk.start_transaction(name="POST /jobs") as request:
                    await chat.get_all_robots()
                    run = chat.bulk([Call.delete_robot("@RBT#1")])
                    outcomes = [o async for o in run]
        sentry_sdk.flush()
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)
    assert outcomes[0].error is None
    messages = {e["message"]: e for e in events.events if e.get("message")}
    single, bulk = messages["inside single"], messages["inside @RBT#1"]
    assert single["contexts"]["trace"]["trace_id"] == request.trace_id
    assert single.get("transaction") == "POST /jobs"
    assert bulk["contexts"]["trace"]["trace_id"] != request.trace_id
    assert bulk.get("transaction") == "tencent_chat.bulk"


async def test_no_bulk_span_when_the_environment_turns_the_sdks_spans_off(
    otel: OTel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_INSTRUMENTATION_TENCENT_CHAT_ROBOTS_ENABLED", "false")
    async with _chat(ScriptedTransport(), rate_limit=None) as chat:
        outcomes = [o async for o in chat.bulk([Call.delete_robot("@RBT#1")])]
    assert outcomes[0].error is None
    assert otel.spans() == []


def test_health_counts_open_streams() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[int, int]:
        async with _chat(ScriptedTransport(), rate_limit=None) as chat:
            async with chat.stream_reply("@RBT#1", "user1"):
                during = chat.health().open_streams
            return during, chat.health().open_streams

    assert run_virtual(main) == (1, 0)
