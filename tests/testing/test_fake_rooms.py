"""room_engine_http_srv: add_robot and delete_robot."""

from __future__ import annotations

import re

import pytest

ADD = "room_engine_http_srv/add_robot"
DELETE = "room_engine_http_srv/delete_robot"
REQUEST_ID = re.compile(r"Id-[0-9a-f]{32}-O-Seq-\d+")


@pytest.fixture
async def room(api) -> str:
    api.fake.create_room("room-1")
    await api.create_robots("@RBT#1", "@RBT#2")
    return "room-1"


async def test_add_and_delete(api, room: str) -> None:
    envelope = await api.call(ADD, {"RoomId": room, "Member_Account": "@RBT#1"})
    assert envelope["ErrorCode"] == 0
    assert REQUEST_ID.fullmatch(envelope["RequestId"])
    assert await api.code(ADD, {"RoomId": room, "Member_Account": "@RBT#2"}) == 0
    assert api.fake.room_members(room) == ["@RBT#1", "@RBT#2"]
    assert await api.code(DELETE, {"RoomId": room, "Member_Account": "@RBT#1"}) == 0
    assert api.fake.room_members(room) == ["@RBT#2"]


async def test_adding_twice_is_ok(api, room: str) -> None:
    for _ in range(2):
        assert await api.code(ADD, {"RoomId": room, "Member_Account": "@RBT#1"}) == 0
    assert api.fake.room_members(room) == ["@RBT#1"]


@pytest.mark.parametrize("endpoint", [ADD, DELETE])
async def test_unknown_or_dismissed_room(api, room: str, endpoint: str) -> None:
    body = {"RoomId": "no-such-room", "Member_Account": "@RBT#1"}
    assert await api.code(endpoint, body) == 100004
    api.fake.create_room("gone")
    api.fake.dismiss_room("gone")
    assert await api.code(endpoint, {"RoomId": "gone", "Member_Account": "@RBT#1"}) == 100004


@pytest.mark.parametrize("endpoint", [ADD, DELETE])
@pytest.mark.parametrize(
    "body",
    [
        {"Member_Account": "@RBT#1"},
        {"RoomId": "", "Member_Account": "@RBT#1"},
        {"RoomId": 1, "Member_Account": "@RBT#1"},
        {"RoomId": ["room-1"], "Member_Account": "@RBT#1"},
        {"RoomId": "room-1"},
        {"RoomId": "room-1", "Member_Account": ""},
        {"RoomId": "room-1", "Member_Account": ["@RBT#1"]},
        {"RoomId": "room-1", "Member_Account": None},
        # Parameter errors come before the room lookup.
        {"RoomId": "no-such-room", "Member_Account": 7},
    ],
)
async def test_invalid_parameters(api, room: str, endpoint: str, body: dict[str, object]) -> None:
    envelope = await api.call(endpoint, body)
    assert envelope["ErrorCode"] == 100002
    assert REQUEST_ID.fullmatch(envelope["RequestId"])


@pytest.mark.parametrize("member", ["@RBT#never", "someone", "administrator"])
async def test_only_valid_robots_can_be_added(api, room: str, member: str) -> None:
    assert await api.code(ADD, {"RoomId": room, "Member_Account": member}) == 100002
    assert api.fake.room_members(room) == []


async def test_deleted_robot_cannot_be_added(api, room: str) -> None:
    await api.code("openim_robot_http_svc/delete_robot", {"Robot_Account": "@RBT#2"})
    assert await api.code(ADD, {"RoomId": room, "Member_Account": "@RBT#2"}) == 100002


async def test_unknown_room_precedes_member_check(api, room: str) -> None:
    assert await api.code(ADD, {"RoomId": "nope", "Member_Account": "@RBT#never"}) == 100004


async def test_default_limit_is_ten_robots_per_room(api, room: str) -> None:
    ids = [f"@RBT#r{n}" for n in range(11)]
    await api.create_robots(*ids)
    for user_id in ids[:10]:
        assert await api.code(ADD, {"RoomId": room, "Member_Account": user_id}) == 0
    assert await api.code(ADD, {"RoomId": room, "Member_Account": ids[10]}) == 100700
    # Re-adding a member of a full room is still fine; removing one frees a place.
    assert await api.code(ADD, {"RoomId": room, "Member_Account": ids[0]}) == 0
    assert await api.code(DELETE, {"RoomId": room, "Member_Account": ids[0]}) == 0
    assert await api.code(ADD, {"RoomId": room, "Member_Account": ids[10]}) == 0
    assert api.fake.room_members(room) == ids[1:]


@pytest.mark.parametrize("fake_options", [{"max_robots_per_room": 1}])
async def test_room_limit_is_configurable_and_per_room(api, room: str) -> None:
    api.fake.create_room("room-2")
    assert await api.code(ADD, {"RoomId": room, "Member_Account": "@RBT#1"}) == 0
    assert await api.code(ADD, {"RoomId": room, "Member_Account": "@RBT#2"}) == 100700
    assert await api.code(ADD, {"RoomId": "room-2", "Member_Account": "@RBT#2"}) == 0


async def test_removing_a_non_member(api, room: str) -> None:
    assert await api.code(DELETE, {"RoomId": room, "Member_Account": "@RBT#1"}) == 100005
    assert await api.code(DELETE, {"RoomId": room, "Member_Account": "stranger"}) == 100005


async def test_a_deleted_robot_can_still_be_removed(api, room: str) -> None:
    assert await api.code(ADD, {"RoomId": room, "Member_Account": "@RBT#1"}) == 0
    await api.code("openim_robot_http_svc/delete_robot", {"Robot_Account": "@RBT#1"})
    assert api.fake.room_members(room) == ["@RBT#1"]
    assert await api.code(DELETE, {"RoomId": room, "Member_Account": "@RBT#1"}) == 0
    assert api.fake.room_members(room) == []


def test_room_set_up_api(fake) -> None:
    fake.create_room("r")
    fake.create_room("r")  # idempotent
    assert fake.room_members("r") == []
    with pytest.raises(ValueError, match="room_id"):
        fake.create_room("")
    with pytest.raises(KeyError):
        fake.room_members("unknown")
    with pytest.raises(KeyError):
        fake.dismiss_room("unknown")
