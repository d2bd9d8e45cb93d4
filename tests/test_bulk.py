"""chat.bulk(): lazy reading, one outcome per item, stopping, the pool, progress counts."""

from __future__ import annotations

import asyncio
import gc
import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import pytest

from tencent_chat_robots import (
    APIConnectionError,
    BulkOutcome,
    BulkStoppedError,
    Call,
    ClientClosedError,
    InvalidParameterError,
    RawResponse,
    RequestError,
    TencentChat,
    TencentChatError,
    ValidationError,
)

from .conftest import ADMIN, SDKAPPID, SECRET_KEY, fail, ok

pytestmark = pytest.mark.usefixtures("no_backoff")

ROBOT = "@RBT#001"


def rooms(n: int | None = None) -> Iterator[Call[Any]]:
    """``Call.add_robot_to_room`` for rooms r0, r1, ... (endless when ``n`` is None)."""
    i = 0
    while n is None or i < n:
        yield Call.add_robot_to_room(f"r{i}", ROBOT)
        i += 1


class Wire:
    """A transport whose requests stay on the wire until released (or answer at once).

    ``answer(room)`` decides each request's answer from its RoomId: a dict (JSON) or an
    exception to raise.
    """

    def __init__(self, *, hold: bool = False, answer: Any = None) -> None:
        self.hold = hold
        self.answer = answer or (lambda room: ok(RequestId=f"id-{room}"))
        self.sent: list[str] = []  # RoomId of every request, in order
        self.on_wire: dict[str, asyncio.Event] = {}
        self.most_on_wire = 0
        self.arrived = asyncio.Event()

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
        room = json.loads(content).get("RoomId", "")
        self.sent.append(room)
        self.arrived.set()
        release = self.on_wire[room] = asyncio.Event()
        self.most_on_wire = max(self.most_on_wire, len(self.on_wire))
        try:
            if self.hold:
                await release.wait()
        finally:
            del self.on_wire[room]
        result = self.answer(room)
        if isinstance(result, BaseException):
            raise result
        return RawResponse(200, json.dumps(result).encode())

    async def until_on_wire(self, n: int) -> None:
        while len(self.on_wire) < n:
            self.arrived.clear()
            await self.arrived.wait()

    def release_all(self) -> None:
        for event in self.on_wire.values():
            event.set()

    async def aclose(self) -> None:
        pass


def chat_on(wire: Wire, **options: Any) -> TencentChat:
    options.setdefault("rate_limit", None)
    return TencentChat(
        SDKAPPID, SECRET_KEY, admin=ADMIN, base_url="http://h", transport=wire, **options
    )


async def settle() -> None:
    """Let every ready task run until none is (the fakes here answer without real waits)."""
    for _ in range(200):
        await asyncio.sleep(0)


# -- Call ----------------------------------------------------------------------------------

EVERY_CALL = [
    Call.create_robot(ROBOT),
    Call.create_robot(ROBOT, nick="Jarvis", self_signature="<b>hi</b>"),
    Call.create_robot(ROBOT, nick="N", face_url="https://x/y.png", self_signature="\u2603"),
    Call.get_all_robots(),
    Call.delete_robot(ROBOT),
    Call.add_robot_to_room("room 1", ROBOT),
    Call.remove_robot_from_room("room-1", ROBOT),
    Call.add_robots_to_live_group("@TGS#1", [ROBOT, "@RBT#002"]),
    Call.remove_robots_from_live_group("@TGS#1", (ROBOT,)),
]


@pytest.mark.parametrize("call", EVERY_CALL, ids=repr)
def test_a_call_survives_its_json_key(call: Call[Any]) -> None:
    key = json.loads(json.dumps(call.key()))
    assert Call.from_key(key) == call
    assert Call.from_key(key).body == call.body


def test_call_keys_are_the_method_and_its_arguments() -> None:
    assert Call.add_robot_to_room("r", ROBOT).key() == ["add_robot_to_room", "r", ROBOT]
    assert Call.add_robots_to_live_group("g", [ROBOT]).key() == [
        "add_robots_to_live_group",
        "g",
        [ROBOT],
    ]
    assert Call.create_robot(ROBOT, nick="N").key() == ["create_robot", ROBOT, ["nick", "N"]]
    assert repr(Call.delete_robot(ROBOT)) == f"Call.delete_robot(robot_account={ROBOT!r})"


@pytest.mark.parametrize(
    "key",
    [
        None,
        [],
        ["nope"],
        ["add_robot_to_room", "r"],
        ["create_robot", ROBOT, ["age", 3]],
        ["create_robot", ROBOT, *[["nick", "n"]] * 4],
        ["create_robot"],
        [[1]],
        [{}],
        "x",
    ],
)
def test_a_key_that_is_no_call_is_refused(key: object) -> None:
    with pytest.raises(ValidationError, match="not a call's key"):
        Call.from_key(key)


def test_a_call_breaking_a_rule_is_refused_when_described() -> None:
    with pytest.raises(ValidationError, match="@RBT#"):
        Call.delete_robot("not-a-robot")
    with pytest.raises(ValidationError):
        Call.add_robot_to_room("", ROBOT)
    with pytest.raises(ValidationError):
        Call.add_robots_to_live_group("g", ROBOT)  # a string, not a list of robots


@pytest.mark.parametrize(
    ("method", "arguments", "match"),
    [
        ("drop_everything", (), "no such method"),
        ("delete_robot", (("robot_account", 5),), "Robot_Account"),
        ("delete_robot", (), "does not take"),
        ("add_robot_to_room", (("room_id", "r"), ("user_id", ROBOT)), "does not take"),
        ("add_robots_to_live_group", (("group_id", "g"), ("robot_accounts", ROBOT)), "list"),
        ("get_all_robots", "xy", "does not take"),
    ],
)
def test_a_call_made_by_hand_is_checked_like_any_other(
    method: str, arguments: Any, match: str
) -> None:
    with pytest.raises(ValidationError, match=match):
        Call(method, arguments)


def test_a_call_changed_with_evolve_is_checked_and_keeps_its_endpoint() -> None:
    call = Call.add_robot_to_room("r", ROBOT)
    moved = attrs.evolve(call, method="remove_robot_from_room")
    assert moved.endpoint == "room_engine_http_srv/delete_robot"
    with pytest.raises(ValidationError):
        attrs.evolve(call, method="delete_robot")
    with pytest.raises(TypeError):
        Call("delete_robot", (("robot_account", ROBOT),), endpoint="../admin")  # type: ignore[call-arg]


def test_a_live_group_call_keeps_its_own_copy_of_the_robots() -> None:
    robots = [ROBOT]
    call = Call.add_robots_to_live_group("g", robots)
    robots.append("@RBT#002")
    assert call.key() == ["add_robots_to_live_group", "g", [ROBOT]]


async def test_chat_call_makes_the_call_and_refuses_anything_else() -> None:
    wire = Wire()
    async with chat_on(wire) as chat:
        result = await chat.call(Call.add_robot_to_room("r9", ROBOT))
        assert result.request_id == "id-r9"
        with pytest.raises(ValidationError, match="expected a Call"):
            await chat.call("add_robot_to_room")  # type: ignore[arg-type]
    assert wire.sent == ["r9"]


# -- one outcome per item -------------------------------------------------------------------


async def test_every_item_gets_exactly_one_outcome_under_faults() -> None:
    """Transient faults are retried away; final ones are that item's error; none is lost."""
    rng = random.Random(5)
    tries: dict[str, int] = {}

    def answer(room: str) -> Any:
        tries[room] = tries.get(room, 0) + 1
        n = int(room[1:])
        if n % 7 == 0:
            return fail(10004, "bad room")  # final: InvalidParameterError
        if tries[room] == 1 and rng.random() < 0.3:
            return rng.choice(
                [fail(10002), APIConnectionError("reset", request_sent=False), fail(100001)]
            )
        return ok(RequestId=f"id-{room}")

    wire = Wire(answer=answer)
    outcomes: list[BulkOutcome[Any]] = []
    async with chat_on(wire) as chat:
        run = chat.bulk(rooms(500), concurrency=16)
        async for outcome in run:
            outcomes.append(outcome)
    assert sorted(o.index for o in outcomes) == list(range(500))
    for outcome in outcomes:
        assert outcome.call == Call.add_robot_to_room(f"r{outcome.index}", ROBOT)
        if outcome.index % 7 == 0:
            assert isinstance(outcome.error, InvalidParameterError)
            assert not outcome.ok
        else:
            assert outcome.ok, outcome.error
            assert outcome.result.request_id == f"id-r{outcome.index}"
    assert (run.done, run.succeeded, run.failed) == (500, 500 - 72, 72)
    assert run.taken == 500


async def test_an_item_that_is_not_a_call_fails_alone_and_sends_nothing() -> None:
    wire = Wire()
    items: list[Any] = [Call.add_robot_to_room("r0", ROBOT), {"RoomId": "x"}, None]
    async with chat_on(wire) as chat:
        outcomes = {o.index: o async for o in chat.bulk(items)}
    assert outcomes[0].ok
    assert isinstance(outcomes[1].error, ValidationError)
    assert isinstance(outcomes[2].error, ValidationError)
    assert outcomes[1].call == {"RoomId": "x"}
    assert wire.sent == ["r0"]


async def test_ordered_outcomes_come_in_the_order_of_the_items() -> None:
    wire = Wire(hold=True)
    async with chat_on(wire) as chat:
        run = chat.bulk(rooms(40), ordered=True, concurrency=8)
        seen: list[int] = []

        async def consume() -> None:
            async for outcome in run:
                seen.append(outcome.index)

        consumer = asyncio.create_task(consume())
        # Answer the requests on the wire last-in first-out, many times over.
        while not consumer.done():
            await settle()
            for room in sorted(wire.on_wire, key=lambda r: -int(r[1:]))[:3]:
                wire.on_wire[room].set()
        await consumer
    assert seen == list(range(40))


# -- lazy reading -----------------------------------------------------------------------


async def test_an_endless_stream_is_read_lazily_and_break_ends_the_run_at_once() -> None:
    wire = Wire()
    pulled = 0

    def counted() -> Iterator[Call[Any]]:
        nonlocal pulled
        for call in rooms():
            pulled += 1
            yield call

    async with chat_on(wire) as chat:
        run = chat.bulk(counted(), concurrency=4)
        handed = 0
        async for _ in run:
            handed += 1
            if handed == 100:
                break
        sent_at_break = len(wire.sent)
        await run.aclose()
        await settle()
        assert len(wire.sent) == sent_at_break  # nothing started after the break
        assert run.workers == 0
        assert run.total is None
        assert pulled == run.taken
        # Taken, not handed out: at most what the pool and its buffer hold.
        assert run.taken - handed <= 2 * 4
        assert run.taken == run.done == handed + len(run.undelivered)


async def test_a_consumer_that_stops_reading_stops_the_reading_of_the_stream() -> None:
    wire = Wire()
    async with chat_on(wire) as chat:
        run = chat.bulk(rooms(), concurrency=4)
        iterator = aiter(run)
        await anext(iterator)
        await settle()
        taken = run.taken
        await settle()
        assert run.taken == taken  # waits for the consumer, not for the stream
        assert taken <= 1 + 2 * 4
        await iterator.aclose()  # type: ignore[attr-defined]
    assert run.workers == 0


async def test_an_async_iterable_works_and_is_read_by_one_worker_at_a_time() -> None:
    wire = Wire()
    reading = 0

    async def stream() -> AsyncIterator[Call[Any]]:
        nonlocal reading
        for call in rooms(60):
            reading += 1
            assert reading == 1
            await asyncio.sleep(0)
            reading -= 1
            yield call

    async with chat_on(wire) as chat:
        indexes = sorted([o.index async for o in chat.bulk(stream(), concurrency=8)])
    assert indexes == list(range(60))
    assert sorted(wire.sent, key=lambda r: int(r[1:])) == [f"r{i}" for i in range(60)]


async def test_a_stream_that_raises_ends_the_run_after_the_outcomes_before_it() -> None:
    wire = Wire()

    def broken() -> Iterator[Call[Any]]:
        yield from rooms(10)
        raise KeyError("plan row 11")

    async with chat_on(wire) as chat:
        run = chat.bulk(broken(), concurrency=3)
        got: list[int] = []

        async def consume() -> None:
            async for outcome in run:
                got.append(outcome.index)

        with pytest.raises(KeyError, match="plan row 11"):
            await consume()
    assert sorted(got) == list(range(10))


# -- stopping ----------------------------------------------------------------------------


async def test_stop_lets_calls_on_the_wire_finish_and_ends_the_waiting_ones_unsent() -> None:
    wire = Wire(hold=True)
    async with chat_on(wire, max_in_flight=3) as chat:  # bulk may hold 2 of 3: the rest queue
        run = chat.bulk(rooms(), concurrency=6)
        outcomes: list[BulkOutcome[Any]] = []

        async def consume() -> None:
            async for outcome in run:
                outcomes.append(outcome)

        consumer = asyncio.create_task(consume())
        await wire.until_on_wire(2)
        await settle()
        on_wire = set(wire.on_wire)
        run.stop()
        await settle()
        wire.release_all()
        await consumer  # the iteration ends by itself
    assert run.taken == 6 == len(outcomes)
    assert {o.call.key()[1] for o in outcomes if o.ok} == on_wire
    stopped = [o for o in outcomes if not o.ok]
    assert len(stopped) == 4
    for outcome in stopped:
        assert isinstance(outcome.error, BulkStoppedError)
        assert outcome.error.request_sent is False
        assert outcome.call.key()[1] not in wire.sent


async def test_cancel_ends_calls_on_the_wire_too_saying_they_were_sent() -> None:
    wire = Wire(hold=True)
    async with chat_on(wire, max_in_flight=3) as chat:
        run = chat.bulk(rooms(), concurrency=5)
        outcomes: list[BulkOutcome[Any]] = []

        async def consume() -> None:
            async for outcome in run:
                outcomes.append(outcome)

        consumer = asyncio.create_task(consume())
        await wire.until_on_wire(2)
        on_wire = set(wire.on_wire)
        run.cancel()
        await consumer
    assert len(outcomes) == 5
    for outcome in outcomes:
        assert isinstance(outcome.error, BulkStoppedError)
        sent = outcome.call.key()[1] in on_wire
        assert outcome.error.request_sent is sent
    assert set(wire.sent) == on_wire


async def test_a_stopped_run_does_not_retry() -> None:
    wire = Wire(hold=True, answer=lambda room: fail(10002))
    async with chat_on(wire) as chat:
        run = chat.bulk(rooms(1), concurrency=1)
        iterator = aiter(run)
        pending = asyncio.ensure_future(anext(iterator))
        await wire.until_on_wire(1)
        run.stop()
        wire.release_all()
        outcome = await pending
    assert isinstance(outcome.error, BulkStoppedError)
    assert outcome.error.request_sent is False  # 10002 is a refusal: nothing was done
    assert wire.sent == ["r0"]


@pytest.mark.parametrize("seed", range(12))
async def test_cancelling_the_consumer_at_a_random_point_leaves_nothing_running(
    seed: int,
) -> None:
    rng = random.Random(seed)
    wire = Wire(hold=True)
    async with chat_on(wire, max_in_flight=3) as chat:
        run = chat.bulk(rooms(), concurrency=5, ordered=rng.random() < 0.5)
        handed: list[BulkOutcome[Any]] = []
        sent_before: set[str] = set()
        on_wire: set[str] = set()

        async def consume() -> None:
            try:
                async for outcome in run:
                    handed.append(outcome)
            except asyncio.CancelledError:
                # Delivered: the run is cancelled by now; what is sent so far is all.
                sent_before.update(wire.sent)
                on_wire.update(wire.on_wire)
                raise

        consumer = asyncio.create_task(consume())
        for _ in range(rng.randrange(1, 40)):
            await asyncio.sleep(0)
            if wire.on_wire and rng.random() < 0.5:
                wire.on_wire[rng.choice(list(wire.on_wire))].set()
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        await run.aclose()
        assert run.workers == 0
        assert set(wire.sent) == sent_before  # nothing sent after the cancellation
        left = run.undelivered
        # Every item taken has one outcome: handed out, or left undelivered.
        assert sorted(o.index for o in handed + left) == list(range(run.taken))
        for outcome in left:
            if isinstance(outcome.error, BulkStoppedError):
                assert outcome.error.request_sent is (outcome.call.key()[1] in on_wire)


async def test_closing_the_client_ends_the_run_with_client_closed_error() -> None:
    wire = Wire(hold=True)
    chat = chat_on(wire)
    run = chat.bulk(rooms(), concurrency=3)
    outcomes: list[BulkOutcome[Any]] = []

    async def consume() -> None:
        async for outcome in run:
            outcomes.append(outcome)

    consumer = asyncio.create_task(consume())
    await wire.until_on_wire(3)
    await chat.aclose(timeout=0)
    with pytest.raises(ClientClosedError, match="items from index 3 on were not taken"):
        await consumer
    assert len(outcomes) == 3
    for outcome in outcomes:
        assert isinstance(outcome.error, ClientClosedError)
        assert outcome.error.request_sent is True


async def test_a_run_on_a_closed_client_raises_at_once() -> None:
    wire = Wire()
    chat = chat_on(wire)
    await chat.aclose()
    with pytest.raises(ClientClosedError):
        async for _ in chat.bulk(rooms()):
            pass
    assert wire.sent == []


async def test_a_run_is_iterated_once() -> None:
    async with chat_on(Wire()) as chat:
        run = chat.bulk(rooms(2))
        assert len([o async for o in run]) == 2
        with pytest.raises(TencentChatError, match="iterated once"):
            aiter(run)


async def test_dropping_the_iterator_cancels_the_run_at_once() -> None:
    wire = Wire(hold=True)
    async with chat_on(wire) as chat:
        run = chat.bulk(rooms(), concurrency=2)
        iterator = aiter(run)
        pending = asyncio.ensure_future(anext(iterator))
        await wire.until_on_wire(2)
        wire.release_all()
        await pending
        assert not run.stopped
        del iterator, pending
        gc.collect()
        assert run.stopped  # on the spot, not when a task gets round to it
        sent = len(wire.sent)
        await settle()
        assert len(wire.sent) == sent
        assert run.workers == 0


async def test_the_iterators_aclose_cancels_and_waits_for_the_workers() -> None:
    wire = Wire(hold=True)
    async with chat_on(wire) as chat:
        run = chat.bulk(rooms(), concurrency=2)
        iterator = aiter(run)
        pending = asyncio.ensure_future(anext(iterator))
        await wire.until_on_wire(2)
        await iterator.aclose()  # type: ignore[attr-defined]
        assert run.workers == 0
        outcome = await pending
        assert isinstance(outcome.error, BulkStoppedError)
        assert outcome.error.request_sent is True
        with pytest.raises(StopAsyncIteration):
            await anext(iterator)


async def test_stop_cancels_a_worker_waiting_on_the_stream_taking_nothing() -> None:
    wire = Wire()
    cancelled = asyncio.Event()
    calls = list(rooms(3))

    async def waiting_stream() -> AsyncIterator[Call[Any]]:
        yield calls[0]
        try:
            await asyncio.Event().wait()  # a queue with nothing in it yet
        except asyncio.CancelledError:
            cancelled.set()
            raise
        yield calls[1]

    async with chat_on(wire) as chat:
        run = chat.bulk(waiting_stream(), concurrency=2)
        iterator = aiter(run)
        first = await anext(iterator)
        await settle()
        run.stop()
        rest = [o async for o in iterator]
    assert first.ok
    assert rest == []
    assert cancelled.is_set()
    assert run.taken == 1
    assert wire.sent == ["r0"]


async def test_closing_the_client_ends_a_run_waiting_on_its_stream() -> None:
    wire = Wire()

    async def waiting_stream() -> AsyncIterator[Call[Any]]:
        yield Call.add_robot_to_room("r0", ROBOT)
        await asyncio.Event().wait()
        yield Call.add_robot_to_room("r1", ROBOT)

    chat = chat_on(wire)
    run = chat.bulk(waiting_stream(), concurrency=2)
    iterator = aiter(run)
    assert (await anext(iterator)).ok
    await settle()
    await chat.aclose()
    with pytest.raises(ClientClosedError, match="items from index 1 on were not taken"):
        await anext(iterator)
    assert run.workers == 0


async def test_an_item_a_stream_yields_after_stopping_its_own_run_is_never_sent() -> None:
    wire = Wire()
    run_box: list[Any] = []

    def stopping_stream() -> Iterator[Call[Any]]:
        yield Call.add_robot_to_room("r0", ROBOT)
        run_box[0].stop()
        yield Call.add_robot_to_room("r1", ROBOT)

    async with chat_on(wire) as chat:
        run = chat.bulk(stopping_stream(), concurrency=1)
        run_box.append(run)
        outcomes = [o async for o in run]
    assert [o.index for o in outcomes] == [0, 1]
    assert outcomes[0].ok
    assert isinstance(outcomes[1].error, BulkStoppedError)
    assert outcomes[1].error.request_sent is False
    assert wire.sent == ["r0"]


async def test_calls_made_by_the_stream_itself_are_not_stopped_with_the_run() -> None:
    """A stream listing robots to delete makes a call of its own: stop() leaves it be."""
    wire = Wire(hold=True)

    async def stream(chat: TencentChat) -> AsyncIterator[Call[Any]]:
        yield Call.add_robot_to_room("r0", ROBOT)
        await chat.add_robot_to_room("lookup", ROBOT)  # held on the wire
        yield Call.add_robot_to_room("r1", ROBOT)

    async with chat_on(wire) as chat:
        run = chat.bulk(stream(chat), concurrency=1)
        iterator = aiter(run)
        pending = asyncio.ensure_future(anext(iterator))
        await wire.until_on_wire(1)
        wire.on_wire["r0"].set()
        assert (await pending).ok
        await wire.until_on_wire(1)
        assert set(wire.on_wire) == {"lookup"}
        run._group.stop(cancel_sent=True)  # the run's calls end; the stream's does not
        await settle()
        assert set(wire.on_wire) == {"lookup"}
        run.cancel()
        rest = [o async for o in iterator]
    assert rest == []


async def test_a_bug_under_a_call_stops_the_run_and_is_raised_after_the_others() -> None:
    def answer(room: str) -> Any:
        if room == "r5":
            return ZeroDivisionError("a bug")  # not an SDK error: nothing turns it into one
        return ok()

    wire = Wire(answer=answer)
    async with chat_on(wire) as chat:
        run = chat.bulk(rooms(), concurrency=1)
        got: list[int] = []
        last: list[BulkOutcome[Any]] = []

        async def consume() -> None:
            async for outcome in run:
                got.append(outcome.index)
                last[:] = [outcome]

        with pytest.raises(ZeroDivisionError, match="a bug"):
            await consume()
    # The item under the bug has its outcome too, a TencentChatError caused by it.
    assert type(last[0].error) is TencentChatError
    assert "ZeroDivisionError under the call: a bug" in str(last[0].error)
    assert isinstance(last[0].error.__cause__, ZeroDivisionError)
    assert got == [0, 1, 2, 3, 4, 5]
    assert run.stopped
    assert wire.sent == [f"r{i}" for i in range(6)]


# -- the pool, the class, the counts ---------------------------------------------------


async def test_a_fixed_pool_never_has_more_calls_on_the_wire_than_workers() -> None:
    wire = Wire(hold=True)
    async with chat_on(wire) as chat:
        run = chat.bulk(rooms(30), concurrency=3)

        async def answer_all() -> None:
            while run.done < 30:
                await settle()
                wire.release_all()

        helper = asyncio.create_task(answer_all())
        assert len([o async for o in run]) == 30
        await helper
    assert wire.most_on_wire == 3


async def test_the_pool_follows_the_rate_and_the_latency() -> None:
    """Little's law: 190/s with 60 ms on the wire needs at least 190 x 0.06 = 11.4
    workers busy; the pool gives that with headroom, not hundreds."""

    class Slow(Wire):
        async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
            await asyncio.sleep(0.06)
            return await super().post(url, content, timeout=timeout)

    wire = Slow()
    async with chat_on(wire, rate_limit=190) as chat:
        run = chat.bulk(rooms(), total=None)
        sizes = []
        async for outcome in run:
            if outcome.index % 20 == 0:
                sizes.append(run.workers)
            if outcome.index >= 120:
                break
    late = sizes[-2:]
    assert all(12 <= n <= 190 * 0.06 * 3 + 4 + 8 for n in late), sizes


async def test_bulk_calls_wait_in_the_bulk_class() -> None:
    seen: list[str] = []

    class Spy:
        rate = 1000

        async def acquire(self, key: str, *, priority: str, deadline: float | None) -> None:
            seen.append(priority)

    async with chat_on(Wire(), limiter=Spy()) as chat:
        assert len([o async for o in chat.bulk(rooms(5))]) == 5
        await chat.add_robot_to_room("x", ROBOT)
    assert seen == ["bulk"] * 5 + ["interactive"]


async def test_bulk_sets_or_clears_max_wait_and_otherwise_keeps_the_views() -> None:
    waits: list[float | None] = []  # how long each acquire may wait, None: no limit

    class Spy:
        rate = 1000

        async def acquire(self, key: str, *, priority: str, deadline: float | None) -> None:
            waits.append(None if deadline is None else deadline - asyncio.get_running_loop().time())

    async with chat_on(Wire(), limiter=Spy()) as chat:
        handler = chat.with_options(max_wait=0.3)
        for run in (handler.bulk(rooms(1)), handler.bulk(rooms(1), max_wait=None)):
            assert len([o async for o in run]) == 1
        assert len([o async for o in chat.bulk(rooms(1), max_wait=5)]) == 1
    assert waits[1] is None
    assert waits[0] == pytest.approx(0.3, abs=0.05)
    assert waits[2] == pytest.approx(5, abs=0.05)


async def test_progress_counts_and_total() -> None:
    async with chat_on(Wire(answer=lambda room: fail(10004) if room == "r1" else ok())) as chat:
        run = chat.bulk(list(rooms(4)))
        assert (run.total, run.taken, run.done) == (4, 0, 0)
        async for _ in run:
            assert run.done == run.succeeded + run.failed
        assert (run.done, run.succeeded, run.failed, run.in_flight) == (4, 3, 1, 0)
        assert chat.bulk(rooms(3), total=3).total == 3
        assert chat.bulk(rooms(3)).total is None
        assert repr(run) == (
            "<BulkRun taken=4 done=4 succeeded=3 failed=1 in_flight=0 workers=0 stopped>"
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": float("nan")}, "concurrency"),
        ({"total": -1}, "total"),
        ({"calls": "abc"}, "iterable"),
        ({"calls": 5}, "iterable"),
        ({"priority": "urgent"}, "priority"),
        ({"max_wait": -1}, "max_wait"),
        ({"max_wait": float("nan")}, "max_wait"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(kwargs: dict[str, Any], match: str) -> None:
    chat = chat_on(Wire())
    kwargs = dict(kwargs)  # the parameter is shared by every run of the test
    calls = kwargs.pop("calls", [])
    with pytest.raises(ValidationError, match=match):
        chat.bulk(calls, **kwargs)


async def test_a_pool_that_shrinks_while_its_workers_wait_for_room_finishes_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Workers woken together must not all leave for the same surplus: the run then
    ended, silently, with most items never read. Here the pool shrinks because one of
    two endpoints falls out of the recent past while the consumer is busy."""
    import tencent_chat_robots._bulk as bulk_module

    monkeypatch.setattr(bulk_module, "_RECENT", 0.1)

    class Slow(Wire):
        async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
            await asyncio.sleep(0.02)
            return await super().post(url, content, timeout=timeout)

    def two_endpoints(n: int) -> Iterator[Call[Any]]:
        for i in range(n):
            method = Call.add_robot_to_room if i % 2 else Call.remove_robot_from_room
            yield method(f"r{i}", ROBOT)

    async with chat_on(Slow(), rate_limit=190) as chat:
        run = chat.bulk(two_endpoints(600))
        outcomes: list[BulkOutcome[Any]] = []
        async for outcome in run:
            outcomes.append(outcome)
            if len(outcomes) == 150:  # the pool has grown to the two endpoints' rates
                grown = run._target
                await asyncio.sleep(0.5)  # busy: both endpoints age out, the pool shrinks
                shrunk = run._target
    assert shrunk < grown
    assert sorted(o.index for o in outcomes) == list(range(600))
    assert run.workers == 0


def test_an_error_about_huge_arguments_stays_short() -> None:
    robots = ["@RBT#x"] * 200_000
    with pytest.raises(ValidationError) as caught:
        Call("add_robots_to_live_group", (("group_id", "g"), ("robot_accounts", robots), ("x", 1)))
    assert len(str(caught.value)) < 300


async def test_a_transport_error_quoting_the_signed_url_is_one_items_scrubbed_failure() -> None:
    """A user's transport raising an error that quotes its URL: that item fails with a
    RequestError that holds no signature, and the run goes on."""

    class Quoting(Wire):
        async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
            if json.loads(content)["RoomId"] == "r1":
                raise ConnectionError(f"connect failed for {url}")
            return await super().post(url, content, timeout=timeout)

    async with chat_on(Quoting()) as chat:
        outcomes = {o.index: o async for o in chat.bulk(rooms(5), concurrency=2)}
    assert sorted(outcomes) == [0, 1, 2, 3, 4]
    assert [i for i, o in outcomes.items() if not o.ok] == [1]
    error = outcomes[1].error
    assert isinstance(error, RequestError)
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None:
        chain.append(link)
        link = link.__cause__ or link.__context__
    for link in chain:
        assert "usersig=" not in f"{link} {link!r}".replace("usersig=REDACTED", "")
        assert link.__traceback__ is None or link is error
