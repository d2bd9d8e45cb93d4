"""Faults and latency aimed at a room, a group, a robot or a user, not only an endpoint.

The expected fields come from the vendor pages (../shared/api-docs): the robot pages for
the robot, room and live-group APIs, robot-conversation.md (2.1-2.4, 3) for the message
and live-room APIs. They are written out here, not read from the fake's own table.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from tencent_chat_robots import (
    APIConnectionError,
    Call,
    NotFoundError,
    PermissionDeniedError,
    TencentChatError,
    ValidationError,
)
from tencent_chat_robots.testing import ENDPOINTS, ConnectionDropped, FakeTencentChat, _serve

CREATE = "openim_robot_http_svc/create_robot"
ROOM_ADD = "room_engine_http_srv/add_robot"
GROUP_ADD = "group_open_avchatroom_http_svc/add_robots"
SENDMSG = "openim/sendmsg"
# A code no rule of the fake answers ("invalid request command"): only an injected fault.
INJECTED = 10003
TEXT = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}]

# Per API: request bodies shaped as its vendor page documents them, and the objects each
# names, by kind. A kind no row of an API names is one its requests never name.
DOCUMENTED: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    # create_robot.txt: "UserID": "@RBT#001"
    (CREATE, {"UserID": "@RBT#001", "Nick": "bot"}, {"robot": "@RBT#001"}),
    # get_all_robots.txt: no body fields
    ("openim_robot_http_svc/get_all_robots", {}, {}),
    # delete_robot.txt: {"Robot_Account": "@RBT#001"}
    ("openim_robot_http_svc/delete_robot", {"Robot_Account": "@RBT#001"}, {"robot": "@RBT#001"}),
    # room_engine add_robot.txt: RoomId, Member_Account (a robot ID); delete_robot the same
    (
        ROOM_ADD,
        {"RoomId": "room-test", "Member_Account": "@RBT#001"},
        {"room": "room-test", "robot": "@RBT#001"},
    ),
    (
        "room_engine_http_srv/delete_robot",
        {"RoomId": "room-test", "Member_Account": "@RBT#001"},
        {"room": "room-test", "robot": "@RBT#001"},
    ),
    # avchatroom add_robots.txt: GroupId, Member_Account (list of robot accounts)
    (
        GROUP_ADD,
        {"GroupId": "@TGS#a6I4ZUUGO", "Member_Account": ["@RBT#001", "@RBT#002"]},
        {"group": "@TGS#a6I4ZUUGO", "robot": "@RBT#002"},
    ),
    (
        "group_open_avchatroom_http_svc/del_robots",
        {"GroupId": "@TGS#a6I4ZUUGO", "Member_Account": ["@RBT#001", "@RBT#002"]},
        {"group": "@TGS#a6I4ZUUGO", "robot": "@RBT#001"},
    ),
    # robot-conversation.md 3: add_robot / del_robot RoomId + RobotList_Account; get_robot RoomId
    (
        "live_engine_http_srv/add_robot",
        {"RoomId": "live-1", "RobotList_Account": ["@RBT#001"]},
        {"room": "live-1", "robot": "@RBT#001"},
    ),
    (
        "live_engine_http_srv/del_robot",
        {"RoomId": "live-1", "RobotList_Account": ["@RBT#001"]},
        {"room": "live-1", "robot": "@RBT#001"},
    ),
    ("live_engine_http_srv/get_robot", {"RoomId": "live-1"}, {"room": "live-1"}),
    # 2.1 sendmsg: From_Account (the sender), To_Account (the recipient)
    (
        SENDMSG,
        {"From_Account": "@RBT#001", "To_Account": "user1", "MsgRandom": 1, "MsgBody": TEXT},
        {"robot": "@RBT#001", "user": "user1"},
    ),
    # 2.2 send_group_msg: GroupId, From_Account ("the robot"; an admin may send as a user)
    (
        "group_open_http_svc/send_group_msg",
        {"GroupId": "@TGS#1", "Random": 1, "MsgBody": TEXT, "From_Account": "@RBT#001"},
        {"group": "@TGS#1", "robot": "@RBT#001"},
    ),
    (
        "group_open_http_svc/send_group_msg",
        {"GroupId": "@TGS#1", "Random": 1, "MsgBody": TEXT, "From_Account": "user1"},
        {"group": "@TGS#1", "user": "user1"},
    ),
    # 2.4 modify_c2c_msg: From_Account, To_Account, MsgKey; modify_group_msg: GroupId, MsgSeq
    (
        "openim/modify_c2c_msg",
        {"From_Account": "user1", "To_Account": "@RBT#001", "MsgKey": "k", "MsgBody": TEXT},
        {"robot": "@RBT#001", "user": "user1"},
    ),
    (
        "openim/modify_group_msg",
        {"GroupId": "@TGS#1", "MsgSeq": 1, "MsgBody": TEXT},
        {"group": "@TGS#1"},
    ),
    # 2.3 send_stream_msg: From_Account (the robot), To_Account (the user)
    (
        "openim_robot_http_svc/send_stream_msg",
        {"From_Account": "@RBT#001", "To_Account": "user1", "Chunk": "hello, "},
        {"robot": "@RBT#001", "user": "user1"},
    ),
]
# Another object of each kind, named by no documented body above.
OTHER = {"room": "room-other", "group": "@TGS#other", "robot": "@RBT#other", "user": "user-other"}
KINDS = ("room", "group", "robot", "user")


def _replaced(value: Any, old: str, new: str) -> Any:
    """``value`` with every string ``old`` in it (lists and objects included) made ``new``."""
    if isinstance(value, dict):
        return {k: _replaced(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v, old, new) for v in value]
    return new if value == old else value


NAMED = [
    pytest.param(endpoint, body, kind, value, id=f"{endpoint}-{kind}-{value}")
    for endpoint, body, objects in DOCUMENTED
    for kind, value in objects.items()
]
NAMEABLE: dict[str, set[str]] = {}
for _endpoint, _, _objects in DOCUMENTED:
    NAMEABLE.setdefault(_endpoint, set()).update(_objects)
NOT_NAMED = [
    pytest.param(endpoint, kind, id=f"{endpoint}-{kind}")
    for endpoint, kinds in NAMEABLE.items()
    for kind in KINDS
    if kind not in kinds
]


def test_the_documented_table_covers_every_endpoint() -> None:
    assert sorted(NAMEABLE) == sorted(ENDPOINTS)


@pytest.mark.parametrize(("endpoint", "body", "kind", "value"), NAMED)
async def test_a_fault_hits_the_request_naming_its_object(
    api, endpoint: str, body: dict[str, Any], kind: str, value: str
) -> None:
    api.fake.fail_next(code=INJECTED, **{kind: value})
    # The same request naming another object of that kind passes, the fault kept...
    assert await api.code(endpoint, _replaced(body, value, OTHER[kind])) != INJECTED
    assert api.fake.pending_faults(**{kind: value}) == 1
    # ...then the documented one takes it, once.
    assert await api.code(endpoint, body) == INJECTED
    assert api.fake.pending_faults(**{kind: value}) == 0
    assert await api.code(endpoint, body) != INJECTED


@pytest.mark.parametrize(("endpoint", "kind"), NOT_NAMED)
def test_aiming_an_endpoint_at_an_object_it_never_names_is_refused(
    fake: FakeTencentChat, endpoint: str, kind: str
) -> None:
    with pytest.raises(ValidationError, match=f"name no {kind}"):
        fake.fail_next(endpoint, INJECTED, **{kind: OTHER[kind]})


# --- each kind of target, over raw HTTP: the others pass, the state shows it ---


async def test_room_target(api) -> None:
    fake = api.fake
    for room in ("room-1", "room-7"):
        fake.create_room(room)
    await api.create_robots("@RBT#1")
    fake.fail_next("add_robot_to_room", 100006, room="room-7")
    assert await api.code(ROOM_ADD, {"RoomId": "room-1", "Member_Account": "@RBT#1"}) == 0
    assert await api.code(ROOM_ADD, {"RoomId": "room-7", "Member_Account": "@RBT#1"}) == 100006
    assert (fake.room_members("room-1"), fake.room_members("room-7")) == (["@RBT#1"], [])
    assert await api.code(ROOM_ADD, {"RoomId": "room-7", "Member_Account": "@RBT#1"}) == 0
    assert fake.room_members("room-7") == ["@RBT#1"]


async def test_room_target_covers_live_rooms(api) -> None:
    api.fake.create_live_room("live-1")
    api.fake.create_live_room("live-2")
    await api.create_robots("@RBT#1")
    api.fake.fail_next(room="live-2", code=100001)
    body = {"RoomId": "live-1", "RobotList_Account": ["@RBT#1"]}
    assert await api.code("live_engine_http_srv/add_robot", body) == 0
    body = {"RoomId": "live-2", "RobotList_Account": ["@RBT#1"]}
    assert await api.code("live_engine_http_srv/add_robot", body) == 100001
    assert api.fake.live_room_robots("live-1") == ["@RBT#1"]
    assert api.fake.live_room_robots("live-2") == []


async def test_group_target(api) -> None:
    fake = api.fake
    for group in ("@TGS#1", "@TGS#2"):
        fake.create_live_group(group)
    await api.create_robots("@RBT#1")
    fake.fail_next(group="@TGS#2", code=10007)
    assert await api.code(GROUP_ADD, {"GroupId": "@TGS#1", "Member_Account": ["@RBT#1"]}) == 0
    assert await api.code(GROUP_ADD, {"GroupId": "@TGS#2", "Member_Account": ["@RBT#1"]}) == 10007
    assert fake.live_group_members("@TGS#1") == ["@RBT#1"]
    assert fake.live_group_members("@TGS#2") == []


async def test_robot_target(api) -> None:
    api.fake.drop_next(robot="@RBT#2")
    assert await api.code(CREATE, {"UserID": "@RBT#1"}) == 0
    with pytest.raises(ConnectionDropped):
        await api.post(CREATE, {"UserID": "@RBT#2"})
    assert api.fake.robots == ["@RBT#1"]
    assert await api.code(CREATE, {"UserID": "@RBT#2"}) == 0
    assert api.fake.robots == ["@RBT#1", "@RBT#2"]


async def test_robot_target_in_a_list_of_robots(api) -> None:
    api.fake.create_live_group("@TGS#1")
    await api.create_robots("@RBT#1", "@RBT#2", "@RBT#3")
    api.fake.fail_next(GROUP_ADD, 10002, robot="@RBT#3")
    assert await api.code(GROUP_ADD, {"GroupId": "@TGS#1", "Member_Account": ["@RBT#1"]}) == 0
    body = {"GroupId": "@TGS#1", "Member_Account": ["@RBT#2", "@RBT#3"]}
    assert await api.code(GROUP_ADD, body) == 10002
    assert api.fake.live_group_members("@TGS#1") == ["@RBT#1"]


async def test_user_target(api) -> None:
    fake = api.fake
    fake.create_robot("@RBT#1")
    fake.create_user("alice")
    fake.create_user("bob")
    fake.fail_next(user="alice", code=20003)

    def message(to: str) -> dict[str, Any]:
        return {"From_Account": "@RBT#1", "To_Account": to, "MsgRandom": 7, "MsgBody": TEXT}

    assert await api.code(SENDMSG, message("bob")) == 0
    assert await api.code(SENDMSG, message("alice")) == 20003
    assert [m.text for m in fake.transcript("bob", "@RBT#1")] == ["hi"]
    assert fake.transcript("alice", "@RBT#1") == []
    assert await api.code(SENDMSG, message("alice")) == 0


async def test_bad_gateway_with_a_target(api) -> None:
    api.fake.create_room("room-1")
    api.fake.create_room("room-7")
    await api.create_robots("@RBT#1")
    api.fake.bad_gateway_next(room="room-7", times=2)
    for room, status in [("room-1", 200), ("room-7", 502), ("room-7", 502), ("room-7", 200)]:
        response = await api.post(ROOM_ADD, {"RoomId": room, "Member_Account": "@RBT#1"})
        assert response.status_code == status
    assert [c.fault for c in api.fake.calls[1:]] == [None, "bad_gateway", "bad_gateway", None]


async def test_drop_after_processing_with_a_target(api) -> None:
    fake = api.fake
    fake.create_room("room-1")
    fake.create_room("room-7")
    await api.create_robots("@RBT#1")
    fake.drop_next(room="room-7", after_processing=True)
    assert await api.code(ROOM_ADD, {"RoomId": "room-1", "Member_Account": "@RBT#1"}) == 0
    with pytest.raises(ConnectionDropped):
        await api.post(ROOM_ADD, {"RoomId": "room-7", "Member_Account": "@RBT#1"})
    assert fake.room_members("room-7") == ["@RBT#1"]  # done; the client cannot know
    assert [(c.error_code, c.http_status, c.fault) for c in fake.calls[-2:]] == [
        (0, 200, None),
        (0, None, "dropped"),
    ]


# --- how targeted faults queue and combine ---


async def test_faults_of_one_target_queue_in_order_of_registration(api) -> None:
    api.fake.create_room("room-7")
    api.fake.fail_next(room="room-7", code=100001, times=2)
    api.fake.fail_next(room="room-7", code=100006)
    assert api.fake.pending_faults(room="room-7") == 3
    body = {"RoomId": "room-7", "Member_Account": "@RBT#1"}
    codes = [await api.code(ROOM_ADD, body) for _ in range(4)]
    assert codes == [100001, 100001, 100006, 100002]  # then the rules: no such robot


async def test_a_call_takes_the_earliest_registered_fault_aimed_at_it(api) -> None:
    api.fake.fail_next(ROOM_ADD, 100001)  # any room
    api.fake.fail_next(ROOM_ADD, 100006, room="room-7")
    room_7 = {"RoomId": "room-7", "Member_Account": "@RBT#1"}
    room_1 = {"RoomId": "room-1", "Member_Account": "@RBT#1"}
    assert await api.code(ROOM_ADD, room_7) == 100001  # registered first
    assert await api.code(ROOM_ADD, room_1) == 100004  # untouched: no such room
    assert await api.code(ROOM_ADD, room_7) == 100006
    assert api.fake.pending_faults(ROOM_ADD) == api.fake.pending_faults(ROOM_ADD, room="room-7")
    assert api.fake.pending_faults(ROOM_ADD) == 0


async def test_every_object_given_must_be_named(api) -> None:
    api.fake.fail_next(room="room-7", robot="@RBT#2", code=INJECTED)
    calls = [("room-7", "@RBT#1"), ("room-1", "@RBT#2"), ("room-7", "@RBT#2")]
    codes = [
        await api.code(ROOM_ADD, {"RoomId": room, "Member_Account": robot}) for room, robot in calls
    ]
    assert codes == [100004, 100004, INJECTED]


async def test_an_object_target_spans_endpoints_and_an_endpoint_narrows_it(api) -> None:
    api.fake.create_room("room-7")
    api.fake.fail_next(robot="@RBT#1", code=INJECTED, times=2)
    api.fake.fail_next("remove_robot_from_room", INJECTED, robot="@RBT#2")
    assert await api.code(CREATE, {"UserID": "@RBT#1"}) == INJECTED
    assert await api.code(CREATE, {"UserID": "@RBT#2"}) == 0  # create_robot: not aimed at
    body = {"RoomId": "room-7", "Member_Account": "@RBT#1"}
    assert await api.code(ROOM_ADD, body) == INJECTED
    assert api.fake.robots == ["@RBT#2"]


async def test_unauthenticated_or_unreadable_calls_leave_a_targeted_fault(api) -> None:
    api.fake.fail_next(CREATE, INJECTED, robot="@RBT#1")
    assert await api.code(CREATE, {"UserID": "@RBT#1"}, usersig="garbage") == 70003
    assert await api.code(CREATE, raw=b"not json") == 60003  # names nothing
    assert api.fake.pending_faults(CREATE, robot="@RBT#1") == 1
    assert await api.code(CREATE, {"UserID": "@RBT#1"}) == INJECTED


def test_clear_faults_cancels_targeted_faults(fake: FakeTencentChat) -> None:
    fake.fail_next(room="room-7", code=INJECTED)
    fake.bad_gateway_next(group="@TGS#1")
    fake.drop_next(user="alice")
    fake.clear_faults()
    assert fake.pending_faults(room="room-7") == 0
    assert fake.pending_faults(group="@TGS#1") == 0
    assert fake.pending_faults(user="alice") == 0


# --- over the real client ---


async def test_over_the_client_a_bulk_run_leaves_the_fault_to_its_room(fake) -> None:
    rooms = [f"room-{i}" for i in range(50)]
    for room in rooms:
        fake.create_room(room)
    fake.create_robot("@RBT#1")
    fake.fail_next("add_robot_to_room", 100006, room="room-7")
    async with fake.client(max_retries=0) as chat:
        outcomes = [o async for o in chat.bulk(Call.add_robot_to_room(r, "@RBT#1") for r in rooms)]
    failed = {rooms[o.index]: o.error for o in outcomes if not o.ok}
    assert list(failed) == ["room-7"]
    assert isinstance(failed["room-7"], PermissionDeniedError)
    assert failed["room-7"].code == 100006
    assert [room for room in rooms if fake.room_members(room) != ["@RBT#1"]] == ["room-7"]
    assert fake.room_members("room-7") == []
    assert fake.pending_faults("add_robot_to_room", room="room-7") == 0


async def test_over_the_client_each_kind_of_target(fake) -> None:
    fake.create_live_group("@TGS#1")
    fake.create_live_group("@TGS#2")
    fake.create_user("alice")
    fake.create_user("bob")
    fake.fail_next(group="@TGS#2", code=10007)
    fake.fail_next(user="alice", code=20003)
    fake.drop_next(robot="@RBT#2")
    async with fake.client(max_retries=0) as chat:
        await chat.create_robot("@RBT#1")
        with pytest.raises(APIConnectionError):
            await chat.create_robot("@RBT#2")
        assert fake.robots == ["@RBT#1"]

        await chat.add_robots_to_live_group("@TGS#1", ["@RBT#1"])
        with pytest.raises(PermissionDeniedError) as refused:
            await chat.add_robots_to_live_group("@TGS#2", ["@RBT#1"])
        assert refused.value.code == 10007
        assert (fake.live_group_members("@TGS#1"), fake.live_group_members("@TGS#2")) == (
            ["@RBT#1"],
            [],
        )

        await chat.send_c2c_message("@RBT#1", "bob", "hi bob")
        with pytest.raises(NotFoundError) as missing:
            await chat.send_c2c_message("@RBT#1", "alice", "hi alice")
        assert missing.value.code == 20003
        assert [m.text for m in fake.transcript("bob", "@RBT#1")] == ["hi bob"]
        assert fake.transcript("alice", "@RBT#1") == []


async def test_over_the_client_a_drop_after_processing_aimed_at_a_room(fake) -> None:
    fake.create_room("room-1")
    fake.create_room("room-7")
    fake.create_robot("@RBT#1")
    fake.drop_next(room="room-7", after_processing=True)
    async with fake.client(max_retries=0) as chat:
        await chat.add_robot_to_room("room-1", "@RBT#1")
        with pytest.raises(APIConnectionError) as dropped:
            await chat.add_robot_to_room("room-7", "@RBT#1")
    assert dropped.value.request_sent
    assert fake.room_members("room-1") == fake.room_members("room-7") == ["@RBT#1"]


# --- added latency ---


def _reply_latency(api, endpoint: str, body: Any) -> float:
    """The delay the fake gives a request (``FakeApp.handle``; nothing is slept)."""
    query = api.query().encode()
    return api.fake.app.handle("POST", f"/v4/{endpoint}", query, json.dumps(body).encode()).latency


def _room_call(room: str) -> dict[str, str]:
    return {"RoomId": room, "Member_Account": "@RBT#1"}


def test_added_latency_applies_to_its_target_only(api) -> None:
    fake = api.fake
    fake.latency = 0.5
    room_7 = fake.add_latency(2.0, room="room-7")
    fake.add_latency(1.0, endpoint="add_robot_to_room", robot="@RBT#1")
    assert _reply_latency(api, ROOM_ADD, _room_call("room-7")) == 3.5  # all three add up
    assert _reply_latency(api, ROOM_ADD, _room_call("room-1")) == 1.5
    assert _reply_latency(api, "live_engine_http_srv/get_robot", {"RoomId": "room-7"}) == 2.5
    assert _reply_latency(api, CREATE, {"UserID": "@RBT#1"}) == 0.5
    room_7.remove()
    room_7.remove()  # removing twice is harmless
    assert _reply_latency(api, ROOM_ADD, _room_call("room-7")) == 1.5
    assert fake.latency == 0.5  # the plain setting is its own


def test_added_latency_as_a_context_manager_and_cleared(api) -> None:
    with api.fake.add_latency(3.0, user="alice") as added:
        assert added.seconds == 3.0
        body = {"From_Account": "@RBT#1", "To_Account": "alice", "Chunk": "x"}
        assert _reply_latency(api, "openim_robot_http_svc/send_stream_msg", body) == 3.0
    assert _reply_latency(api, "openim_robot_http_svc/send_stream_msg", body) == 0.0
    api.fake.add_latency(3.0, user="alice")
    api.fake.clear_faults()
    assert _reply_latency(api, "openim_robot_http_svc/send_stream_msg", body) == 0.0


class _Exchange:
    """One request driven straight through the fake's ASGI app, its answer recorded."""

    def __init__(self, fake: FakeTencentChat, endpoint: str, body: dict[str, Any]) -> None:
        self.fake = fake
        self.endpoint = endpoint
        self.body = json.dumps(body).encode()
        self.received = asyncio.Event()  # the app has read the request
        self.code: int | None = None  # the answer's ErrorCode, once it came

    async def run(self) -> None:
        query = (
            f"sdkappid={self.fake.sdkappid}&identifier={self.fake.admin}"
            f"&usersig={self.fake.usersig()}&random=1&contenttype=json"
        )
        scope = {
            "type": "http",
            "method": "POST",
            "path": f"/v4/{self.endpoint}",
            "query_string": query.encode(),
            "headers": [],
        }

        async def receive() -> dict[str, Any]:
            self.received.set()
            return {"type": "http.request", "body": self.body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                self.code = json.loads(message["body"])["ErrorCode"]

        await self.fake.app(scope, receive, send)


async def test_added_latency_holds_back_only_its_target(api) -> None:
    """Ordering, not wall time: room-7's answer waits, room-1's does not."""
    fake = api.fake
    fake.create_room("room-1")
    fake.create_room("room-7")
    fake.create_robot("@RBT#1")
    with fake.add_latency(3600, room="room-7"):
        slow = _Exchange(fake, ROOM_ADD, _room_call("room-7"))
        task = asyncio.create_task(slow.run())
        with anyio.fail_after(5):
            await slow.received.wait()  # read, processed, now held back
            fast = _Exchange(fake, ROOM_ADD, _room_call("room-1"))
            await fast.run()
        assert fast.code == 0
        assert slow.code is None
        assert not task.done()
        assert fake.room_members("room-7") == ["@RBT#1"]  # changed at receipt, unanswered
    after = _Exchange(fake, "room_engine_http_srv/delete_robot", _room_call("room-7"))
    with anyio.fail_after(5):
        await after.run()  # removed: the next room-7 call is not held back
    assert after.code == 0
    assert not task.done()  # a call already waiting keeps its delay
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- bad arguments ---

BAD_ARGUMENTS: list[tuple[Callable[[FakeTencentChat], object], str]] = [
    (lambda f: f.fail_next(code=INJECTED), "name an endpoint"),
    (lambda f: f.fail_next(), "name an endpoint"),
    (lambda f: f.drop_next(), "name an endpoint"),
    (lambda f: f.bad_gateway_next(times=2), "name an endpoint"),
    (lambda f: f.add_latency(1.0), "name an endpoint"),
    (lambda f: f.pending_faults(), "name an endpoint"),
    (lambda f: f.fail_next(room="room-7"), "code"),
    (lambda f: f.fail_next(room="room-7", code=0), "non-zero"),
    (lambda f: f.fail_next(room="room-7", code="10002"), "non-zero"),
    (lambda f: f.fail_next("add_robots", INJECTED, room="r"), "unknown endpoint"),
    (lambda f: f.drop_next(123), "unknown endpoint"),
    (lambda f: f.add_latency(1.0, endpoint="nope/nope"), "unknown endpoint"),
    (lambda f: f.fail_next(room="", code=INJECTED), "room must be a non-empty string"),
    (lambda f: f.drop_next(group=7), "group must be a non-empty string"),
    (lambda f: f.bad_gateway_next(user=["alice"]), "user must be a non-empty string"),
    (lambda f: f.add_latency(1.0, robot=b"@RBT#1"), "robot must be a non-empty string"),
    (lambda f: f.fail_next(robot="alice", code=INJECTED), "not a robot id"),
    (lambda f: f.fail_next(user="@RBT#1", code=INJECTED), "aim at it with robot="),
    (lambda f: f.fail_next("get_all_robots", INJECTED, room="room-7"), "name no room"),
    (lambda f: f.add_latency(1.0, endpoint="create_robot", group="@TGS#1"), "name no group"),
    (lambda f: f.fail_next(room="room-7", code=INJECTED, times=0), "times"),
    (lambda f: f.drop_next(room="room-7", times=-1), "times"),
    (lambda f: f.bad_gateway_next(room="room-7", times=1.5), "times"),
    (lambda f: f.bad_gateway_next(room="room-7", times=True), "times"),
    (lambda f: f.add_latency(-0.1, room="room-7"), "seconds"),
    (lambda f: f.add_latency(math.nan, room="room-7"), "seconds"),
    (lambda f: f.add_latency("1", room="room-7"), "seconds"),
]


@pytest.mark.parametrize(("make", "message"), BAD_ARGUMENTS)
def test_bad_arguments_are_validation_errors(
    fake: FakeTencentChat, make: Callable[[FakeTencentChat], object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        make(fake)
    assert isinstance(refused.value, TencentChatError)
    assert isinstance(refused.value, ValueError)  # as the unscoped calls always raised
    assert fake.pending_faults(room="room-7") == 0


# --- fake.serve() without the testing extra ---


def test_serve_without_uvicorn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # "import uvicorn" now fails
    with pytest.raises(
        ModuleNotFoundError, match=r"pip install 'tencent-chat-robots\[testing\]'"
    ) as err:
        FakeTencentChat().serve()  # at the call, before any "async with"
    assert err.value.name == "uvicorn"  # the command line reads it to print its own hint
    assert "fake.serve() needs uvicorn" in str(err.value)


async def test_serving_an_app_without_uvicorn_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(ModuleNotFoundError, match=r"tencent-chat-robots\[testing\]"):
        async with _serve.serve(FakeTencentChat().app):
            pass  # pragma: no cover - never entered


def test_a_broken_uvicorn_is_not_reported_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def import_module(name: str) -> object:
        raise ModuleNotFoundError("No module named 'h11'", name="h11")

    monkeypatch.setattr(_serve, "importlib", SimpleNamespace(import_module=import_module))
    with pytest.raises(ModuleNotFoundError, match="h11") as err:
        FakeTencentChat().serve()
    assert err.value.name == "h11"
