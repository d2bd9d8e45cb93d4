"""live_engine_http_srv (TUILiveKit live rooms): add_robot, del_robot and get_robot.

Expected codes come from the vendor's page (robot-conversation.md, section 3): 100002
invalid parameter, 100004 room missing or dissolved, 100006 not a Live room, at most three
robots in a room, RoomId at most 48 bytes, a RequestId in every answer. A fourth robot
has no documented code: the fake answers 100002 (its choice, see ``_state``).
"""

from __future__ import annotations

import re

import pytest

ADD = "live_engine_http_srv/add_robot"
DEL = "live_engine_http_srv/del_robot"
GET = "live_engine_http_srv/get_robot"
REQUEST_ID = re.compile(r"Id-[0-9a-f]{32}-O-Seq-\d+")
ROOM = "live-1"


@pytest.fixture
async def room(api) -> str:
    api.fake.create_live_room(ROOM)
    await api.create_robots("@RBT#1", "@RBT#2", "@RBT#3", "@RBT#4")
    return ROOM


async def robots_of(api, room_id: str) -> list[str]:
    """The room's robots as get_robot answers them."""
    envelope = await api.call(GET, {"RoomId": room_id})
    assert envelope["ErrorCode"] == 0
    robots: list[str] = envelope["Response"]["RobotList_Account"]
    return robots


async def test_add_get_and_remove(api, room: str) -> None:
    added = await api.call(ADD, {"RoomId": room, "RobotList_Account": ["@RBT#2", "@RBT#1"]})
    assert added["ErrorCode"] == 0
    assert REQUEST_ID.fullmatch(added["RequestId"])
    listed = await api.call(GET, {"RoomId": room})
    assert listed["Response"] == {"RobotList_Account": ["@RBT#2", "@RBT#1"]}
    assert REQUEST_ID.fullmatch(listed["RequestId"])
    assert api.fake.live_room_robots(room) == ["@RBT#2", "@RBT#1"]
    removed = await api.call(DEL, {"RoomId": room, "RobotList_Account": ["@RBT#2"]})
    assert removed["ErrorCode"] == 0
    assert REQUEST_ID.fullmatch(removed["RequestId"])
    assert await robots_of(api, room) == ["@RBT#1"]


async def test_an_empty_room_lists_no_robots(api, room: str) -> None:
    assert await robots_of(api, room) == []


async def test_adding_a_robot_already_in_is_ok(api, room: str) -> None:
    body = {"RoomId": room, "RobotList_Account": ["@RBT#1", "@RBT#1"]}
    assert [await api.code(ADD, body) for _ in range(2)] == [0, 0]
    assert await robots_of(api, room) == ["@RBT#1"]


async def test_three_robots_at_most_all_or_nothing(api, room: str) -> None:
    three = {"RoomId": room, "RobotList_Account": ["@RBT#1", "@RBT#2", "@RBT#3"]}
    assert await api.code(ADD, three) == 0
    # A fourth, alone or beside robots already in: refused, and nothing changes.
    fourth = await api.call(ADD, {"RoomId": room, "RobotList_Account": ["@RBT#1", "@RBT#4"]})
    assert fourth["ErrorCode"] == 100002
    assert "at most 3" in fourth["ErrorInfo"]
    assert REQUEST_ID.fullmatch(fourth["RequestId"])
    assert await robots_of(api, room) == ["@RBT#1", "@RBT#2", "@RBT#3"]
    # Robots already in a full room may be named again; a place freed may be taken.
    assert await api.code(ADD, three) == 0
    assert await api.code(DEL, {"RoomId": room, "RobotList_Account": ["@RBT#2"]}) == 0
    assert await api.code(ADD, {"RoomId": room, "RobotList_Account": ["@RBT#4"]}) == 0
    assert await robots_of(api, room) == ["@RBT#1", "@RBT#3", "@RBT#4"]


async def test_four_robots_in_one_request_are_refused(api, room: str) -> None:
    body = {"RoomId": room, "RobotList_Account": ["@RBT#1", "@RBT#2", "@RBT#3", "@RBT#4"]}
    assert await api.code(ADD, body) == 100002
    assert await robots_of(api, room) == []


@pytest.mark.parametrize("fake_options", [{"max_robots_per_live_room": 1}])
async def test_the_cap_is_configurable_and_per_room(api, room: str) -> None:
    api.fake.create_live_room("live-2")
    assert await api.code(ADD, {"RoomId": room, "RobotList_Account": ["@RBT#1"]}) == 0
    assert await api.code(ADD, {"RoomId": room, "RobotList_Account": ["@RBT#2"]}) == 100002
    assert await api.code(ADD, {"RoomId": "live-2", "RobotList_Account": ["@RBT#2"]}) == 0


@pytest.mark.parametrize("endpoint", [ADD, DEL, GET])
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"RoomId": "", "RobotList_Account": ["@RBT#1"]},
        {"RoomId": 7, "RobotList_Account": ["@RBT#1"]},
        {"RoomId": None, "RobotList_Account": ["@RBT#1"]},
        {"RoomId": [ROOM], "RobotList_Account": ["@RBT#1"]},
        {"RoomId": "x" * 49, "RobotList_Account": ["@RBT#1"]},
        {"RoomId": "é" * 25, "RobotList_Account": ["@RBT#1"]},  # 50 UTF-8 bytes
    ],
)
async def test_invalid_room_id(api, room: str, endpoint: str, body: dict[str, object]) -> None:
    envelope = await api.call(endpoint, body)
    assert envelope["ErrorCode"] == 100002
    assert REQUEST_ID.fullmatch(envelope["RequestId"])


@pytest.mark.parametrize("endpoint", [ADD, DEL])
@pytest.mark.parametrize(
    "robots",
    [
        "absent",
        None,
        "@RBT#1",
        [],
        [""],
        ["@RBT#1", 2],
        [None],
        [["@RBT#1"]],
        {"@RBT#1": 1},
    ],
)
async def test_invalid_robot_list(api, room: str, endpoint: str, robots: object) -> None:
    api.fake.add_live_room_robots(room, ["@RBT#1"])
    body = {"RoomId": room} if robots == "absent" else {"RoomId": room, "RobotList_Account": robots}
    assert await api.code(endpoint, body) == 100002
    assert api.fake.live_room_robots(room) == ["@RBT#1"]


@pytest.mark.parametrize("room_id", ["x" * 48, "é" * 24, "直播间-1"])
async def test_room_id_up_to_48_bytes(api, room: str, room_id: str) -> None:
    api.fake.create_live_room(room_id)
    assert await api.code(ADD, {"RoomId": room_id, "RobotList_Account": ["@RBT#1"]}) == 0
    assert await robots_of(api, room_id) == ["@RBT#1"]


@pytest.mark.parametrize("endpoint", [ADD, DEL, GET])
async def test_unknown_or_dissolved_room(api, room: str, endpoint: str) -> None:
    robots = {"RobotList_Account": ["@RBT#1"]}  # get_robot takes no list: it is ignored
    envelope = await api.call(endpoint, {"RoomId": "no-such-room", **robots})
    assert envelope["ErrorCode"] == 100004
    assert REQUEST_ID.fullmatch(envelope["RequestId"])
    api.fake.dismiss_live_room(room)
    assert await api.code(endpoint, {"RoomId": room, **robots}) == 100004


@pytest.mark.parametrize("endpoint", [ADD, DEL, GET])
async def test_a_tuiroom_room_or_a_live_group_is_not_a_live_room(
    api, room: str, endpoint: str
) -> None:
    api.fake.create_room("conference-1")
    api.fake.create_live_group("@TGS#live")
    for room_id in ("conference-1", "@TGS#live"):
        envelope = await api.call(endpoint, {"RoomId": room_id, "RobotList_Account": ["@RBT#1"]})
        assert envelope["ErrorCode"] == 100006
        assert REQUEST_ID.fullmatch(envelope["RequestId"])
    assert api.fake.room_members("conference-1") == []
    assert api.fake.live_group_members("@TGS#live") == []


async def test_parameter_errors_precede_the_room_lookup(api, room: str) -> None:
    api.fake.create_room("conference-1")
    for room_id in ("no-such-room", "conference-1"):
        assert await api.code(ADD, {"RoomId": room_id, "RobotList_Account": []}) == 100002


@pytest.mark.parametrize("endpoint", [ADD, DEL])
async def test_the_room_lookup_precedes_the_member_checks(api, room: str, endpoint: str) -> None:
    api.fake.create_room("conference-1")
    stranger = {"RobotList_Account": ["@RBT#never"]}
    assert await api.code(endpoint, {"RoomId": "no-such-room", **stranger}) == 100004
    assert await api.code(endpoint, {"RoomId": "conference-1", **stranger}) == 100006


@pytest.mark.parametrize("member", ["@RBT#never", "bot1", "administrator"])
async def test_only_valid_robots_can_be_added_all_or_nothing(api, room: str, member: str) -> None:
    body = {"RoomId": room, "RobotList_Account": ["@RBT#1", member]}
    assert await api.code(ADD, body) == 100002
    assert await robots_of(api, room) == []


async def test_a_deleted_robot_cannot_be_added_but_can_be_removed(api, room: str) -> None:
    assert await api.code(ADD, {"RoomId": room, "RobotList_Account": ["@RBT#1"]}) == 0
    await api.code("openim_robot_http_svc/delete_robot", {"Robot_Account": "@RBT#1"})
    assert await api.code(ADD, {"RoomId": room, "RobotList_Account": ["@RBT#1"]}) == 100002
    assert await robots_of(api, room) == ["@RBT#1"]
    assert await api.code(DEL, {"RoomId": room, "RobotList_Account": ["@RBT#1"]}) == 0
    assert await robots_of(api, room) == []


async def test_removing_robots_not_in_the_room(api, room: str) -> None:
    # A robot that is not in the room: nothing to do, fine (removal sets a state).
    assert await api.code(DEL, {"RoomId": room, "RobotList_Account": ["@RBT#1"]}) == 0
    # An account that is not a robot at all: invalid, and nothing changes.
    assert await api.code(ADD, {"RoomId": room, "RobotList_Account": ["@RBT#2"]}) == 0
    body = {"RoomId": room, "RobotList_Account": ["@RBT#2", "@RBT#never"]}
    assert await api.code(DEL, body) == 100002
    assert await robots_of(api, room) == ["@RBT#2"]


@pytest.mark.parametrize("endpoint", [ADD, DEL, GET])
async def test_internal_errors_are_100001_with_a_request_id(api, room: str, endpoint: str) -> None:
    api.fake.error_rate = 1.0
    envelope = await api.call(endpoint, {"RoomId": room, "RobotList_Account": ["@RBT#1"]})
    assert envelope["ErrorCode"] == 100001
    assert REQUEST_ID.fullmatch(envelope["RequestId"])


async def test_protocol_failures_carry_a_request_id_too(api, room: str) -> None:
    unauthenticated = await api.call(GET, {"RoomId": room}, usersig=None)
    bad_command = await api.call("", path="/v4/live_engine_http_srv/no_such_command")
    assert [unauthenticated["ErrorCode"], bad_command["ErrorCode"]] == [70002, 60002]
    assert REQUEST_ID.fullmatch(unauthenticated["RequestId"])
    assert REQUEST_ID.fullmatch(bad_command["RequestId"])


def test_live_room_set_up_api(fake) -> None:
    fake.create_live_room("live")
    fake.create_live_room("live")  # idempotent
    assert fake.live_room_robots("live") == []
    for bad in ("", "x" * 49, "é" * 25, 7):
        with pytest.raises(ValueError, match="live room id"):
            fake.create_live_room(bad)
    with pytest.raises(KeyError):
        fake.live_room_robots("unknown")
    with pytest.raises(KeyError):
        fake.dismiss_live_room("unknown")
    fake.dismiss_live_room("live")
    with pytest.raises(KeyError):
        fake.live_room_robots("live")


def test_one_room_id_names_one_kind_of_room(fake) -> None:
    fake.create_room("conference")
    fake.create_live_room("live")
    with pytest.raises(ValueError, match="TUIRoom room"):
        fake.create_live_room("conference")
    with pytest.raises(ValueError, match="live room"):
        fake.create_room("live")
    # A live group's id is a group's, not a room's: a live room may share it.
    fake.create_live_group("@TGS#both")
    fake.create_live_room("@TGS#both")
    assert fake.live_room_robots("@TGS#both") == []


def test_arranging_robots_follows_the_documented_rules(fake) -> None:
    fake.create_live_room("live")
    for robot in ("@RBT#1", "@RBT#2", "@RBT#3", "@RBT#4"):
        fake.create_robot(robot)
    fake.add_live_room_robots("live", ["@RBT#1", "@RBT#2", "@RBT#3"])
    with pytest.raises(ValueError, match="100002"):
        fake.add_live_room_robots("live", ["@RBT#4"])
    with pytest.raises(ValueError, match="100004"):
        fake.add_live_room_robots("gone", ["@RBT#4"])
    assert fake.live_room_robots("live") == ["@RBT#1", "@RBT#2", "@RBT#3"]
    assert fake.calls == []
