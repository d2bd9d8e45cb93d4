"""live_engine_http_srv (TUILiveKit live rooms): the client against the fake server.

The vendor's facts (robot-conversation.md, section 3): 100 calls/s per API, at most three
robots in a room, RoomId at most 48 bytes; 100001 internal (retried), 100002 invalid
parameter, 100004 room missing or dissolved, 100006 not a Live room.
"""

from __future__ import annotations

import asyncio
import re

import attrs
import pytest

from tencent_chat_robots import (
    ActionResult,
    Call,
    Endpoint,
    InternalServerError,
    InvalidParameterError,
    NotFoundError,
    PermissionDeniedError,
    RateLimiter,
    TencentChat,
    ValidationError,
)
from tencent_chat_robots.testing import FakeTencentChat
from tencent_chat_robots.testing.pytest_plugin import FakeChat

from ._virtual_time import VirtualClockLoop, run_virtual
from .conftest import ScriptedTransport
from .test_robots import ROBOT_IDS

REQUEST_ID = re.compile(r"Id-[0-9a-f]{32}-O-Seq-\d+")
ROBOTS = ["@RBT#1", "@RBT#2", "@RBT#3", "@RBT#4"]
ADD, DEL, GET = (
    "live_engine_http_srv/add_robot",
    "live_engine_http_srv/del_robot",
    "live_engine_http_srv/get_robot",
)


@pytest.fixture
def live(fake_chat: FakeChat) -> FakeChat:
    """The fake with live room "live-1" and four robots; no call made yet."""
    fake_chat.fake.create_live_room("live-1")
    for robot in ROBOTS:
        fake_chat.fake.create_robot(robot)
    return fake_chat


async def test_add_get_and_remove(live: FakeChat) -> None:
    fake, chat = live
    added = await chat.add_robots_to_live_room("live-1", ["@RBT#1", "@RBT#2"])
    assert isinstance(added, ActionResult)
    assert added.request_id is not None
    assert REQUEST_ID.fullmatch(added.request_id)
    assert await chat.get_live_room_robots("live-1") == ["@RBT#1", "@RBT#2"]
    removed = await chat.remove_robots_from_live_room("live-1", ("@RBT#1",))
    assert removed.request_id is not None
    assert removed.request_id != added.request_id
    assert await chat.get_live_room_robots("live-1") == ["@RBT#2"]
    assert fake.live_room_robots("live-1") == ["@RBT#2"]
    assert [(c.endpoint, c.body) for c in fake.calls] == [
        (ADD, {"RoomId": "live-1", "RobotList_Account": ["@RBT#1", "@RBT#2"]}),
        (GET, {"RoomId": "live-1"}),
        (DEL, {"RoomId": "live-1", "RobotList_Account": ["@RBT#1"]}),
        (GET, {"RoomId": "live-1"}),
    ]


async def test_an_empty_room_has_no_robots(live: FakeChat) -> None:
    assert await live.chat.get_live_room_robots("live-1") == []


async def test_adding_and_removing_are_safe_to_repeat(live: FakeChat) -> None:
    fake, chat = live
    for _ in range(2):
        await chat.add_robots_to_live_room("live-1", ["@RBT#1"])
    assert fake.live_room_robots("live-1") == ["@RBT#1"]
    for _ in range(2):
        await chat.remove_robots_from_live_room("live-1", ["@RBT#1"])
    assert fake.live_room_robots("live-1") == []


async def test_an_invalid_robot_is_an_invalid_parameter(live: FakeChat) -> None:
    fake, chat = live
    with pytest.raises(InvalidParameterError) as caught:
        await chat.add_robots_to_live_room("live-1", ["@RBT#1", "@RBT#never"])
    assert caught.value.code == 100002
    assert caught.value.request_id is not None
    assert fake.live_room_robots("live-1") == []


async def test_a_fourth_robot_in_the_room_is_refused_by_the_server(live: FakeChat) -> None:
    # Three robots in one call pass the client's check; the room's total is the server's.
    fake, chat = live
    await chat.add_robots_to_live_room("live-1", ROBOTS[:3])
    with pytest.raises(InvalidParameterError) as caught:
        await chat.add_robots_to_live_room("live-1", ROBOTS[3:])
    assert caught.value.code == 100002
    assert fake.live_room_robots("live-1") == ROBOTS[:3]


@pytest.mark.parametrize("method", ["add_robots_to_live_room", "remove_robots_from_live_room"])
async def test_an_unknown_or_dissolved_room_is_not_found(live: FakeChat, method: str) -> None:
    fake, chat = live
    with pytest.raises(NotFoundError) as caught:
        await getattr(chat, method)("no-such-room", ["@RBT#1"])
    assert caught.value.code == 100004
    assert caught.value.request_id is not None
    fake.dismiss_live_room("live-1")
    with pytest.raises(NotFoundError):
        await chat.get_live_room_robots("live-1")


async def test_a_room_that_is_not_a_live_room_is_refused(live: FakeChat) -> None:
    fake, chat = live
    fake.create_room("conference-1")
    fake.create_live_group("@TGS#live")
    for room_id in ("conference-1", "@TGS#live"):
        with pytest.raises(PermissionDeniedError) as caught:
            await chat.add_robots_to_live_room(room_id, ["@RBT#1"])
        assert caught.value.code == 100006
        with pytest.raises(PermissionDeniedError):
            await chat.get_live_room_robots(room_id)
    assert fake.room_members("conference-1") == []


async def test_a_fourth_robot_is_refused_before_anything_is_sent(live: FakeChat) -> None:
    fake, chat = live
    with pytest.raises(ValidationError, match="at most 3"):
        await chat.add_robots_to_live_room("live-1", ROBOTS)
    with pytest.raises(ValidationError, match="at most 3"):
        Call.add_robots_to_live_room("live-1", ROBOTS)
    assert fake.calls == []


async def test_taking_out_four_robots_is_sent_as_the_room_holds_at_most_three(
    live: FakeChat,
) -> None:
    fake, chat = live
    await chat.add_robots_to_live_room("live-1", ROBOTS[:3])
    await chat.remove_robots_from_live_room("live-1", ROBOTS)  # the fourth was never in
    assert fake.live_room_robots("live-1") == []


@pytest.mark.parametrize("room_id", ["x" * 49, "é" * 25])  # 49 and 50 UTF-8 bytes
async def test_a_room_id_over_48_bytes_is_refused_before_anything_is_sent(
    live: FakeChat, room_id: str
) -> None:
    fake, chat = live
    for call in (
        chat.add_robots_to_live_room(room_id, ["@RBT#1"]),
        chat.remove_robots_from_live_room(room_id, ["@RBT#1"]),
        chat.get_live_room_robots(room_id),
    ):
        with pytest.raises(ValidationError, match="1 to 48 UTF-8 bytes"):
            await call
    assert fake.calls == []


@pytest.mark.parametrize("room_id", ["x" * 48, "é" * 24])
async def test_a_room_id_of_48_bytes_is_sent(live: FakeChat, room_id: str) -> None:
    fake, chat = live
    fake.create_live_room(room_id)
    await chat.add_robots_to_live_room(room_id, ["@RBT#1"])
    assert await chat.get_live_room_robots(room_id) == ["@RBT#1"]


async def test_internal_errors_are_retried(live: FakeChat, no_backoff: None) -> None:
    fake, chat = live
    fake.fail_next(ADD, 100001, times=2)
    fake.fail_next(GET, 100001)
    await chat.add_robots_to_live_room("live-1", ["@RBT#1"])
    assert await chat.get_live_room_robots("live-1") == ["@RBT#1"]
    assert [c.error_code for c in fake.calls] == [100001, 100001, 0, 100001, 0]


async def test_a_persistent_internal_error_is_raised_as_such(live: FakeChat) -> None:
    fake, _ = live
    fake.error_rate = 1.0  # the fake's internal error on live_engine is 100001
    async with fake.client(max_retries=0) as chat:
        with pytest.raises(InternalServerError) as caught:
            await chat.get_live_room_robots("live-1")
    assert caught.value.code == 100001
    assert caught.value.request_id is not None


async def test_bulk_runs_live_room_calls(live: FakeChat) -> None:
    fake, chat = live
    rooms = [f"live-{i}" for i in range(2, 8)]
    for room in rooms:
        fake.create_live_room(room)
    placed = {room: ROBOTS[i % 2 : i % 2 + 3] for i, room in enumerate(rooms)}  # three each
    adds = chat.bulk(Call.add_robots_to_live_room(room, robots) for room, robots in placed.items())
    outcomes = [outcome async for outcome in adds]
    assert sorted(o.index for o in outcomes) == list(range(len(rooms)))
    assert all(o.ok and isinstance(o.result, ActionResult) for o in outcomes)
    lists = chat.bulk(Call.get_live_room_robots(room) for room in rooms)
    listed = {rooms[o.index]: o.result async for o in lists}
    assert listed == placed
    removals = chat.bulk(Call.remove_robots_from_live_room(r, ROBOTS[1:3]) for r in rooms)
    assert [o.error async for o in removals] == [None] * len(rooms)
    assert {room: fake.live_room_robots(room) for room in rooms} == {
        room: ["@RBT#1"] if i % 2 == 0 else ["@RBT#4"] for i, room in enumerate(rooms)
    }


def test_live_room_calls_are_paced_at_95_per_second_by_default() -> None:
    chat = TencentChat(1400000000, "k", base_url="http://h")
    assert isinstance(chat.limiter, RateLimiter)
    for endpoint in (ADD, DEL, GET):
        assert chat.limiter.rate_for(endpoint) == 95
    assert chat.limiter.rate_for(Endpoint.ROOM_ADD_ROBOT) == 190


def test_a_burst_of_live_room_calls_is_never_refused_for_frequency() -> None:
    """On a virtual clock shared by the client and the fake (the server's real 100/s)."""

    async def main(loop: VirtualClockLoop) -> tuple[list[int | None], int, float]:
        fake = FakeTencentChat(clock=loop.time)
        fake.create_live_room("live-1")
        began = loop.time()
        async with fake.client() as chat:
            await asyncio.gather(*(chat.get_live_room_robots("live-1") for _ in range(300)))
        codes = [call.error_code for call in fake.calls]
        return codes, fake.max_arrivals_in_window(GET), loop.time() - began

    codes, most_in_a_second, took = run_virtual(main)
    assert codes == [0] * 300  # not one 60007, so not one retry
    assert most_in_a_second == 95
    assert took >= (300 - 95) / 95  # paced, not merely lucky


def test_without_pacing_the_fake_refuses_the_101st_live_room_call() -> None:
    """The contrast: the fake does hold live_engine to 100/s (not the 200/s of others)."""

    async def main(loop: VirtualClockLoop) -> list[int | None]:
        fake = FakeTencentChat(clock=loop.time)
        fake.create_live_room("live-1")
        async with fake.client(rate_limit=None, max_retries=0) as chat:
            await asyncio.gather(
                *(chat.get_live_room_robots("live-1") for _ in range(150)), return_exceptions=True
            )
        return [call.error_code for call in fake.calls]

    codes = run_virtual(main)
    assert codes.count(0) == 100
    assert codes.count(60007) == 50


# --- robot ids, by the vendor's pages ---------------------------------------------------

# RobotList_Account names the robots add_robot puts in a room and del_robot takes out
# (robot-conversation.md, section 3): robots' UserIDs, each held to create_robot's rule
# (the table in test_robots).


@pytest.mark.parametrize(("robot", "refusal"), ROBOT_IDS)
@pytest.mark.parametrize("method", ["add_robots_to_live_room", "remove_robots_from_live_room"])
async def test_each_robot_is_a_robots_user_id(method: str, robot: str, refusal: str | None) -> None:
    transport = ScriptedTransport()
    chat = TencentChat(1400000000, "k", base_url="http://h", transport=transport, rate_limit=None)
    robots = ["@RBT#001", robot]
    if refusal is None:
        await getattr(chat, method)("live-1", robots)
        assert transport.sent[0].body == {"RoomId": "live-1", "RobotList_Account": robots}
    else:
        with pytest.raises(ValidationError) as caught:
            await getattr(chat, method)("live-1", robots)
        assert str(caught.value) == f"RobotList_Account (robot_accounts)[1] {refusal}"
        with pytest.raises(ValidationError):
            getattr(Call, method)("live-1", robots)
        assert transport.sent == []


async def test_the_fake_refuses_what_the_sdk_refuses(live: FakeChat) -> None:
    """The fake (the server's stand-in) answers 100002 to the ids the SDK refuses."""
    fake, chat = live
    for robot in ("bot1", "@RBT#" + "x" * 35):
        for method in ("add_robots_to_live_room", "remove_robots_from_live_room"):
            with attrs.validators.disabled():  # past the SDK's checks, as another client
                call = getattr(Call, method)("live-1", ["@RBT#1", robot])
            with pytest.raises(InvalidParameterError) as caught:
                await chat.call(call)
            assert caught.value.code == 100002
    assert fake.live_room_robots("live-1") == []


# The edges of the request's rules, each message naming its field (mutation survivors).
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((7, ["@RBT#1"]), "RoomId (room_id) must be a string, not int"),
        (("r\udcff", ["@RBT#1"]), "RoomId (room_id) is not valid Unicode text: 'r\\udcff'"),
        (("", ["@RBT#1"]), "RoomId (room_id) must be 1 to 48 UTF-8 bytes, got 0"),
        (("r", 5), "RobotList_Account (robot_accounts) must be a list of account ids, not int"),
        # 64 listed: still read one by one (its first is no robot); 65: refused unread.
        (
            ("r", ["bad"] + [f"@RBT#{n}" for n in range(63)]),
            "RobotList_Account (robot_accounts)[0] must start with '@RBT#', got 'bad'",
        ),
        (
            ("r", ["bad"] + [f"@RBT#{n}" for n in range(64)]),
            "RobotList_Account (robot_accounts) names 65 robots; a live room holds at most 3",
        ),
    ],
)
def test_the_live_room_rules_at_their_edges(args: tuple[object, object], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Call.add_robots_to_live_room(*args)  # type: ignore[arg-type]
    assert str(refused.value) == message


def test_a_live_room_id_of_one_byte_is_sent() -> None:
    assert dict(Call.add_robots_to_live_room("r", ["@RBT#1"]).arguments)["room_id"] == "r"
