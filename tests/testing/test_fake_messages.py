"""The fake's message APIs over raw HTTP: each documented rule and code (robot-conversation.md
2.1, 2.2, 2.4), the choices the fake documents where the pages are silent, the windows
on the fake's clock, and what the fake keeps (transcripts, group messages)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests._clocks import WALL, ManualClock

from tencent_chat_robots.testing import FakeTencentChat

SENDMSG = "openim/sendmsg"
SEND_GROUP = "group_open_http_svc/send_group_msg"
MODIFY_C2C = "openim/modify_c2c_msg"
MODIFY_GROUP = "openim/modify_group_msg"
ROBOT = "@RBT#001"
USER = "user1"
MAX_BYTES = 12 * 1024


@pytest.fixture
def fake_options(wall: ManualClock) -> dict[str, Any]:
    return {"wall_clock": wall}


@pytest.fixture
def world(fake: FakeTencentChat) -> FakeTencentChat:
    fake.create_robot(ROBOT)
    fake.create_user(USER)
    fake.create_group("@TGS#public", "Public", [ROBOT, USER])
    fake.create_live_group("@TGS#live")
    return fake


def text(value: str) -> list[dict[str, Any]]:
    return [{"MsgType": "TIMTextElem", "MsgContent": {"Text": value}}]


def c2c(**overrides: Any) -> dict[str, Any]:
    """A valid sendmsg body from the robot to the user; ``...`` as a value drops the key."""
    body: dict[str, Any] = {
        "From_Account": ROBOT,
        "To_Account": USER,
        "MsgRandom": 7,
        "MsgBody": text("hello"),
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def group(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "GroupId": "@TGS#public",
        "Random": 7,
        "MsgBody": text("hello group"),
        "From_Account": ROBOT,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def body_of_json_size(size: int) -> list[dict[str, Any]]:
    """A one-text MsgBody whose compact JSON is ``size`` bytes."""
    overhead = len(json.dumps(text(""), separators=(",", ":")))
    return text("x" * (size - overhead))


# --- openim/sendmsg ---


async def test_sendmsg_answers_msg_time_and_a_unique_msg_key(api, world) -> None:
    first = await api.call(SENDMSG, c2c(MsgRandom=1))
    second = await api.call(SENDMSG, c2c(MsgRandom=2))
    assert first["ErrorCode"] == second["ErrorCode"] == 0
    assert first["MsgTime"] == int(WALL)
    assert type(first["MsgTime"]) is int
    assert isinstance(first["MsgKey"], str)
    assert first["MsgKey"] != second["MsgKey"]
    transcript = world.transcript(USER, ROBOT)
    assert [m.msg_key for m in transcript] == [first["MsgKey"], second["MsgKey"]]
    message = transcript[0]
    assert (message.sender, message.recipient, message.text) == (ROBOT, USER, "hello")
    assert (message.random, message.msg_time, message.modified) == (1, int(WALL), 0)
    assert message.platform == "RESTAPI"


async def test_sendmsg_without_from_account_sends_as_the_admin(api, world) -> None:
    answer = await api.call(SENDMSG, c2c(From_Account=...))
    assert answer["ErrorCode"] == 0
    [message] = world.transcript(world.admin, USER)
    assert message.sender == world.admin


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"To_Account": ...}, 90003),
        ({"To_Account": 5}, 90003),
        ({"To_Account": ""}, 90003),
        ({"MsgRandom": ...}, 90005),
        ({"MsgRandom": -1}, 90005),
        ({"MsgRandom": 2**32}, 90005),
        ({"MsgRandom": "7"}, 90005),
        ({"MsgRandom": True}, 90005),
        ({"MsgRandom": 7.0}, 90005),
        ({"MsgBody": ...}, 90007),
        ({"MsgBody": "hello"}, 90007),
        ({"MsgBody": {"MsgType": "TIMTextElem", "MsgContent": {"Text": "x"}}}, 90007),
        ({"MsgBody": []}, 90002),
        ({"MsgBody": ["hello"]}, 90010),
        ({"MsgBody": [{"MsgType": "TIMTextElem"}]}, 90010),
        ({"MsgBody": [{"MsgType": 1, "MsgContent": {}}]}, 90010),
        ({"MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": "x"}]}, 90010),
        ({"MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {}}]}, 90010),
        ({"MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": 1}}]}, 90010),
        ({"MsgBody": [{"MsgType": "TIMCustomElem", "MsgContent": {"Data": 1}}]}, 90010),
        ({"MsgBody": [{"MsgType": "TIMCustomElem", "MsgContent": {"Ext": None}}]}, 90010),
        ({"From_Account": "ghost"}, 90008),
        ({"From_Account": 5}, 90008),
        ({"To_Account": "ghost"}, 20003),
        ({"MsgLifeTime": -1}, 90026),
        ({"MsgLifeTime": 604_801}, 90026),
        ({"MsgLifeTime": "60"}, 90026),
        ({"MsgLifeTime": True}, 90026),
        ({"SyncOtherMachine": 3}, 90001),
        ({"SyncOtherMachine": True}, 90001),
        ({"MsgSeq": -1}, 90001),
        ({"ForbidCallbackControl": ["ForbidEverything"]}, 90001),
        ({"ForbidCallbackControl": "ForbidBeforeSendMsgCallback"}, 90001),
        ({"SendMsgControl": ["NoLastMsg", "Loud"]}, 90001),
        ({"CloudCustomData": 1}, 90001),
        ({"OfflinePushInfo": []}, 90001),
        ({"MsgBody": body_of_json_size(MAX_BYTES + 1)}, 80002),
        ({"MsgBody": body_of_json_size(MAX_BYTES - 2), "CloudCustomData": "abc"}, 80002),
        # The first failing check wins, in the documented order.
        ({"To_Account": ..., "MsgRandom": ...}, 90003),
        ({"MsgRandom": ..., "MsgBody": "x"}, 90005),
        ({"MsgBody": [], "From_Account": "ghost"}, 90002),
        ({"From_Account": "ghost", "To_Account": "ghost2"}, 90008),
        ({"To_Account": "ghost", "MsgLifeTime": -1}, 20003),
        ({"MsgLifeTime": -1, "SyncOtherMachine": 3}, 90026),
        ({"SyncOtherMachine": 3, "MsgBody": body_of_json_size(MAX_BYTES + 1)}, 90001),
    ],
)
async def test_sendmsg_refusals(api, world, overrides: dict[str, Any], code: int) -> None:
    assert await api.code(SENDMSG, c2c(**overrides)) == code
    assert world.transcript(USER, ROBOT) == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"MsgLifeTime": 0},
        {"MsgLifeTime": 604_800},
        {"SyncOtherMachine": 1},
        {"SyncOtherMachine": 2},
        {"MsgSeq": 0},
        {"MsgSeq": 2**32 - 1},
        {"MsgRandom": 0},
        {"MsgRandom": 2**32 - 1},
        {"ForbidCallbackControl": ["ForbidBeforeSendMsgCallback", "ForbidAfterSendMsgCallback"]},
        {"SendMsgControl": ["NoUnread", "NoLastMsg", "WithMuteNotifications"]},
        {"CloudCustomData": "{}", "OfflinePushInfo": {"PushFlag": 0}},
        {"MsgBody": [{"MsgType": "TIMCustomElem", "MsgContent": {"Data": "d"}}]},
        {"MsgBody": [{"MsgType": "TIMFaceElem", "MsgContent": {"Index": 1}}]},
        {"MsgBody": body_of_json_size(MAX_BYTES)},
        {"MsgBody": body_of_json_size(MAX_BYTES - 3), "CloudCustomData": "abc"},
        {"From_Account": "administrator"},
    ],
)
async def test_sendmsg_accepts(api, world, overrides: dict[str, Any]) -> None:
    assert await api.code(SENDMSG, c2c(**overrides)) == 0


async def test_a_deleted_robot_is_no_account(api, world) -> None:
    world.create_robot("@RBT#old")
    assert await api.code("openim_robot_http_svc/delete_robot", {"Robot_Account": "@RBT#old"}) == 0
    assert await api.code(SENDMSG, c2c(From_Account="@RBT#old")) == 90008
    assert await api.code(SENDMSG, c2c(To_Account="@RBT#old")) == 20003


async def test_a_user_and_a_robot_message_each_other_both_ways(api, world) -> None:
    world.create_user("user2")
    assert await api.code(SENDMSG, c2c(From_Account=USER, To_Account=ROBOT, MsgRandom=1)) == 0
    assert await api.code(SENDMSG, c2c(MsgRandom=2)) == 0
    assert await api.code(SENDMSG, c2c(To_Account="user2", MsgRandom=3)) == 0
    assert await api.code(SENDMSG, c2c(From_Account=USER, To_Account=ROBOT, MsgRandom=4)) == 0
    transcript = world.transcript(ROBOT, USER)  # either order names the conversation
    assert [(m.sender, m.random) for m in transcript] == [
        (USER, 1),
        (ROBOT, 2),
        (USER, 4),
    ]
    assert [m.random for m in world.transcript("user2", ROBOT)] == [3]


# --- sendmsg de-duplication: 120 s, sender + recipient + MsgSeq + MsgRandom + content ---


async def test_a_repeat_within_120_s_answers_the_first_and_stores_nothing(
    api, world, clock, wall
) -> None:
    first = await api.call(SENDMSG, c2c(MsgSeq=5))
    clock.advance(119.9)
    wall.advance(119.9)
    repeat = await api.call(SENDMSG, c2c(MsgSeq=5))
    assert (repeat["ErrorCode"], repeat["MsgKey"], repeat["MsgTime"]) == (
        0,
        first["MsgKey"],
        int(WALL),
    )
    assert len(world.transcript(USER, ROBOT)) == 1
    # 120 s after the first, the same request is a new message.
    clock.advance(0.1)
    later = await api.call(SENDMSG, c2c(MsgSeq=5))
    assert later["MsgKey"] != first["MsgKey"]
    assert len(world.transcript(USER, ROBOT)) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"MsgRandom": 8},
        {"MsgSeq": 6},
        {"MsgSeq": ...},
        {"MsgBody": text("other")},
        {"From_Account": ...},
        {"To_Account": "user2"},
    ],
)
async def test_a_different_key_part_is_a_new_message(api, world, change: dict[str, Any]) -> None:
    world.create_user("user2")
    first = await api.call(SENDMSG, c2c(MsgSeq=5))
    other = await api.call(SENDMSG, c2c(**{"MsgSeq": 5, **change}))
    assert other["MsgKey"] != first["MsgKey"]


async def test_custom_data_is_not_part_of_the_repeat_key(api, world) -> None:
    first = await api.call(SENDMSG, c2c(CloudCustomData="a"))
    repeat = await api.call(SENDMSG, c2c(CloudCustomData="b"))
    assert repeat["MsgKey"] == first["MsgKey"]
    [message] = world.transcript(USER, ROBOT)
    assert message.cloud_custom_data == "a"


async def test_a_refused_send_is_not_remembered_as_a_first(api, world) -> None:
    # SyncOtherMachine is not part of the repeat key: remembered, the next would be a repeat.
    assert await api.code(SENDMSG, c2c(SyncOtherMachine=3)) == 90001
    assert await api.code(SENDMSG, c2c()) == 0
    assert len(world.transcript(USER, ROBOT)) == 1


# --- group_open_http_svc/send_group_msg ---


async def test_send_group_msg_numbers_messages_per_group_from_1(api, world, wall) -> None:
    world.create_group("@TGS#other", "Work")
    answers = [await api.call(SEND_GROUP, group(Random=n)) for n in range(3)]
    assert [a["MsgSeq"] for a in answers] == [1, 2, 3]
    assert {a["MsgTime"] for a in answers} == {int(WALL)}
    other = await api.call(SEND_GROUP, group(GroupId="@TGS#other"))
    assert other["MsgSeq"] == 1
    messages = world.group_messages("@TGS#public")
    assert [(m.msg_seq, m.sender, m.text, m.random) for m in messages] == [
        (1, ROBOT, "hello group", 0),
        (2, ROBOT, "hello group", 1),
        (3, ROBOT, "hello group", 2),
    ]
    assert messages[0].mentions == ()


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"GroupId": ...}, 10004),
        ({"GroupId": 5}, 10004),
        ({"GroupId": ""}, 10015),
        ({"GroupId": "has space"}, 10015),
        ({"GroupId": "x" * 49}, 10015),
        ({"GroupId": "@TGS#nope"}, 10010),
        ({"Random": ...}, 10004),
        ({"Random": -1}, 10004),
        ({"Random": 2**32}, 10004),
        ({"Random": "7"}, 10004),
        ({"MsgBody": ...}, 10004),
        ({"MsgBody": "hi"}, 10004),
        ({"MsgBody": []}, 10004),
        ({"MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": None}}]}, 10004),
        ({"MsgBody": [{"MsgType": "TIMCustomElem", "MsgContent": {"Desc": 2}}]}, 10004),
        ({"From_Account": 5}, 10004),
        ({"From_Account": "ghost"}, 10019),
        ({"MsgPriority": "Urgent"}, 10004),
        ({"OnlineOnlyFlag": 2}, 10004),
        ({"OnlineOnlyFlag": True}, 10004),
        ({"SendMsgControl": ["WithMuteNotifications"]}, 10004),
        ({"ForbidCallbackControl": ["Forbid"]}, 10004),
        ({"CloudCustomData": {}}, 10004),
        ({"OfflinePushInfo": "push"}, 10004),
        ({"MsgBody": body_of_json_size(MAX_BYTES + 1)}, 80002),
        # First failure wins.
        ({"GroupId": "@TGS#nope", "Random": ...}, 10010),
        ({"From_Account": "ghost", "MsgPriority": "Urgent"}, 10019),
    ],
)
async def test_send_group_msg_refusals(api, world, overrides: dict[str, Any], code: int) -> None:
    assert await api.code(SEND_GROUP, group(**overrides)) == code
    assert world.group_messages("@TGS#public") == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"From_Account": ...},
        {"From_Account": "stranger-user"},  # imported below, not a member: not checked
        {"MsgPriority": "Lowest", "OnlineOnlyFlag": 1, "SendMsgControl": ["NoUnread"]},
        {"ForbidCallbackControl": ["ForbidAfterSendMsgCallback"], "CloudCustomData": "c"},
        {"MsgBody": body_of_json_size(MAX_BYTES)},
        {"GroupId": "@TGS#live"},
    ],
)
async def test_send_group_msg_accepts(api, world, overrides: dict[str, Any]) -> None:
    world.create_user("stranger-user")
    assert await api.code(SEND_GROUP, group(**overrides)) == 0


async def test_live_groups_ignore_online_only(api, world) -> None:
    await api.call(SEND_GROUP, group(GroupId="@TGS#live", OnlineOnlyFlag=1))
    await api.call(SEND_GROUP, group(OnlineOnlyFlag=1))
    assert world.group_messages("@TGS#live")[0].online_only == 0
    assert world.group_messages("@TGS#public")[0].online_only == 1


async def test_a_dismissed_group_is_gone(api, world) -> None:
    world.dismiss_group("@TGS#public")
    assert await api.code(SEND_GROUP, group()) == 10010
    world.dismiss_live_group("@TGS#live")
    assert await api.code(SEND_GROUP, group(GroupId="@TGS#live")) == 10010


async def test_a_repeat_random_in_a_group_within_5_minutes_is_dropped(
    api, world, clock, wall
) -> None:
    first = await api.call(SEND_GROUP, group(Random=42))
    clock.advance(299.9)
    wall.advance(299.9)
    # Another sender and text: the Random alone makes it a repeat.
    repeat = await api.call(SEND_GROUP, group(Random=42, From_Account=USER, MsgBody=text("x")))
    assert (repeat["ErrorCode"], repeat["MsgSeq"], repeat["MsgTime"]) == (0, 1, first["MsgTime"])
    assert len(world.group_messages("@TGS#public")) == 1
    # The same Random in another group is its own message.
    assert (await api.call(SEND_GROUP, group(GroupId="@TGS#live", Random=42)))["MsgSeq"] == 1
    clock.advance(0.1)
    later = await api.call(SEND_GROUP, group(Random=42))
    assert (later["MsgSeq"], later["MsgTime"]) == (2, int(WALL + 299.9))


async def test_40_messages_a_second_per_group_then_10023(api, world, clock) -> None:
    world.create_group("@TGS#quiet")
    codes = [await api.code(SEND_GROUP, group(Random=n)) for n in range(41)]
    assert codes == [0] * 40 + [10023]
    # Another group has its own budget.
    assert await api.code(SEND_GROUP, group(GroupId="@TGS#quiet", Random=1)) == 0
    # Modifying is not sending: not counted against the group.
    assert await api.code(MODIFY_GROUP, {"GroupId": "@TGS#public", "MsgSeq": 1, **_NEW}) == 0
    clock.advance(0.999)
    assert await api.code(SEND_GROUP, group(Random=100)) == 10023
    clock.advance(0.001)  # (t-1, t]: the first 40 have left the window
    assert await api.code(SEND_GROUP, group(Random=101)) == 0
    assert len(world.group_messages("@TGS#public")) == 41


async def test_refused_arrivals_count_against_the_group(api, world, clock) -> None:
    codes = [await api.code(SEND_GROUP, group(Random=...)) for _ in range(40)]
    assert codes == [10004] * 40
    assert await api.code(SEND_GROUP, group()) == 10023


@pytest.mark.parametrize("fake_options", [{"rate_limit": 30}])
async def test_the_api_limit_still_comes_first(api, world, fake_options) -> None:
    codes = [await api.code(SEND_GROUP, group(Random=n)) for n in range(31)]
    assert codes == [0] * 30 + [60007]


# --- modify ---

_NEW = {"MsgBody": text("new text")}


async def test_modify_c2c_replaces_the_body_and_keeps_the_history(api, world, wall) -> None:
    sent = await api.call(SENDMSG, c2c())
    wall.advance(1.5)
    body = {"From_Account": ROBOT, "To_Account": USER, "MsgKey": sent["MsgKey"], **_NEW}
    assert await api.code(MODIFY_C2C, body) == 0
    wall.advance(1.0)
    body = {
        "From_Account": ROBOT,
        "To_Account": USER,
        "MsgKey": sent["MsgKey"],
        "CloudCustomData": "cd",
    }
    assert await api.code(MODIFY_C2C, body) == 0
    [message] = world.transcript(USER, ROBOT)
    assert (message.text, message.body, message.cloud_custom_data) == (
        "new text",
        text("new text"),
        "cd",
    )
    assert message.modified == 2
    assert message.texts == ["hello", "new text", "new text"]
    assert [r.at for r in message.revisions] == [WALL, WALL + 1.5, WALL + 2.5]
    assert (message.msg_key, message.msg_time) == (sent["MsgKey"], int(WALL))


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"From_Account": ...}, 10004),
        ({"To_Account": 3}, 10004),
        ({"MsgKey": ""}, 10004),
        ({"MsgBody": ...}, 10004),
        ({"MsgBody": []}, 10004),
        ({"MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {}}]}, 10004),
        ({"CloudCustomData": 1}, 10004),
        ({"MsgKey": "1_2_3"}, 10004),
        ({"From_Account": USER, "To_Account": ROBOT}, 10004),  # the recipient is not its sender
        ({"To_Account": "user2"}, 10004),
        ({"MsgBody": body_of_json_size(MAX_BYTES + 1)}, 80002),
    ],
)
async def test_modify_c2c_refusals(api, world, overrides: dict[str, Any], code: int) -> None:
    world.create_user("user2")
    sent = await api.call(SENDMSG, c2c())
    body = {"From_Account": ROBOT, "To_Account": USER, "MsgKey": sent["MsgKey"], **_NEW}
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not ...}
    assert await api.code(MODIFY_C2C, body) == code
    assert world.transcript(USER, ROBOT)[0].modified == 0


async def test_modify_c2c_counts_the_size_of_the_result(api, world) -> None:
    sent = await api.call(SENDMSG, c2c(MsgBody=body_of_json_size(MAX_BYTES)))
    body = {"From_Account": ROBOT, "To_Account": USER, "MsgKey": sent["MsgKey"]}
    assert await api.code(MODIFY_C2C, {**body, "CloudCustomData": "x"}) == 80002
    assert await api.code(MODIFY_C2C, {**body, "CloudCustomData": ""}) == 0


async def test_modify_group_replaces_the_message(api, world) -> None:
    await api.call(SEND_GROUP, group(Random=1))
    await api.call(SEND_GROUP, group(Random=2, CloudCustomData="keep"))
    assert await api.code(MODIFY_GROUP, {"GroupId": "@TGS#public", "MsgSeq": 2, **_NEW}) == 0
    first, second = world.group_messages("@TGS#public")
    assert (first.text, first.modified) == ("hello group", 0)
    assert (second.text, second.cloud_custom_data, second.texts) == (
        "new text",
        "keep",
        ["hello group", "new text"],
    )


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"GroupId": ...}, 10004),
        ({"GroupId": "bad id"}, 10015),
        ({"GroupId": "@TGS#nope"}, 10010),
        ({"GroupId": "@TGS#live"}, 10007),
        ({"MsgSeq": ...}, 10004),
        ({"MsgSeq": "1"}, 10004),
        ({"MsgSeq": 2}, 10004),
        ({"MsgSeq": 0}, 10004),
        ({"MsgBody": ...}, 10004),
        ({"MsgBody": "x"}, 10004),
        ({"MsgBody": ..., "CloudCustomData": 5}, 10004),
        ({"MsgBody": body_of_json_size(MAX_BYTES + 1)}, 80002),
    ],
)
async def test_modify_group_refusals(api, world, overrides: dict[str, Any], code: int) -> None:
    await api.call(SEND_GROUP, group())
    await api.call(SEND_GROUP, group(GroupId="@TGS#live"))
    body = {"GroupId": "@TGS#public", "MsgSeq": 1, **_NEW}
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not ...}
    assert await api.code(MODIFY_GROUP, body) == code
    assert world.group_messages("@TGS#public")[0].modified == 0


# --- the Python face and the /_fake/messages route ---


def test_users_groups_and_their_refusals(fake: FakeTencentChat) -> None:
    fake.create_robot(ROBOT)
    fake.create_user("u1")
    fake.create_user("u1")
    with pytest.raises(ValueError, match="robot"):
        fake.create_user("@RBT#x")
    with pytest.raises(ValueError, match="non-empty"):
        fake.create_user("")
    fake.create_group("@TGS#g", "Community", ["u2", ROBOT])
    assert fake.users == ["u1", "u2"]
    assert fake.group_members("@TGS#g") == ["u2", ROBOT]
    fake.add_group_members("@TGS#g", ["u3"])
    fake.create_group("@TGS#g", "Community", ["u1"])  # same type: adds
    assert fake.group_members("@TGS#g") == ["u2", ROBOT, "u3", "u1"]
    with pytest.raises(ValueError, match="exists as a Community"):
        fake.create_group("@TGS#g", "Public")
    with pytest.raises(ValueError, match="create_live_group"):
        fake.create_group("@TGS#x", "AVChatRoom")
    with pytest.raises(ValueError, match="group type"):
        fake.create_group("@TGS#x", "Secret")
    with pytest.raises(ValueError, match="valid robot"):
        fake.create_group("@TGS#x", "Public", ["@RBT#ghost"])
    with pytest.raises(ValueError, match="invalid group id"):
        fake.create_group("has space")
    fake.create_live_group("@TGS#live")
    with pytest.raises(ValueError, match="live group"):
        fake.create_group("@TGS#live")
    with pytest.raises(ValueError, match="ordinary group"):
        fake.create_live_group("@TGS#g")
    for kind in ("Private", "Work", "Public", "ChatRoom", "Meeting", "Community"):
        fake.create_group(f"@TGS#{kind}", kind)
    with pytest.raises(KeyError):
        fake.group_messages("@TGS#nope")
    assert fake.group_messages("@TGS#live") == []
    assert fake.transcript("u1", ROBOT) == []


async def test_the_live_group_robot_apis_see_live_groups_only(api, world) -> None:
    body = {"GroupId": "@TGS#public", "Member_Account": [ROBOT]}
    assert await api.code("group_open_avchatroom_http_svc/add_robots", body) == 10010


async def test_reads_are_copies(api, world) -> None:
    await api.call(SENDMSG, c2c())
    world.transcript(USER, ROBOT)[0].body[0]["MsgContent"]["Text"] = "changed"
    assert world.transcript(USER, ROBOT)[0].text == "hello"
    assert world.transcript(USER, ROBOT)[0].body == text("hello")


async def test_the_messages_route(api, world, wall) -> None:
    sent = await api.call(SENDMSG, c2c())
    await api.call(SEND_GROUP, group())
    response = await api.http.get("/_fake/messages")
    assert response.status_code == 200
    document = response.json()
    assert document == world.messages_snapshot()
    assert document["users"] == [USER]
    assert document["groups"] == {"@TGS#public": {"type": "Public", "members": [ROBOT, USER]}}
    [conversation] = document["conversations"]
    assert sorted(conversation["accounts"]) == sorted([ROBOT, USER])
    [message] = conversation["messages"]
    assert message["msg_key"] == sent["MsgKey"]
    assert message["revisions"] == [{"at": WALL, "text": "hello"}]
    [group_message] = document["group_messages"]["@TGS#public"]
    assert (group_message["msg_seq"], group_message["text"]) == (1, "hello group")
    # Not an arrival, not a call.
    assert [c.endpoint for c in world.calls] == [SENDMSG, SEND_GROUP]
    # The state document keeps its shape.
    assert set((await api.http.get("/_fake/state")).json()) == {
        "robots",
        "deleted_robots",
        "rooms",
        "live_groups",
        "live_rooms",
    }
