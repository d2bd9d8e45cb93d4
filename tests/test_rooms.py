"""room_engine_http_srv: add_robot and its companion delete_robot."""

from __future__ import annotations

import pytest

from tencent_chat_robots import (
    LimitExceededError,
    NotFoundError,
    NotRoomMemberError,
    TencentChat,
    ValidationError,
)

from .conftest import RespxChat, ScriptedTransport, fail, ok


async def test_add_robot_to_room_sends_room_and_member(respx_chat: RespxChat) -> None:
    respx_chat.answer(
        "room_engine_http_srv/add_robot",
        ok(RequestId="Id-52f049ba12d741b7a84959700acdb1d5-O-Seq-56287"),
    )
    result = await respx_chat.chat.add_robot_to_room("room-test", "@RBT#001")
    assert result.request_id == "Id-52f049ba12d741b7a84959700acdb1d5-O-Seq-56287"
    (sent,) = respx_chat.sent()
    assert sent.path == "/v4/room_engine_http_srv/add_robot"
    assert sent.body == {"RoomId": "room-test", "Member_Account": "@RBT#001"}


async def test_remove_robot_from_room_uses_delete_robot(respx_chat: RespxChat) -> None:
    respx_chat.answer("room_engine_http_srv/delete_robot", ok(RequestId="Id-1"))
    result = await respx_chat.chat.remove_robot_from_room("room-test", "@RBT#001")
    assert result.request_id == "Id-1"
    (sent,) = respx_chat.sent()
    assert sent.path == "/v4/room_engine_http_srv/delete_robot"
    assert sent.body == {"RoomId": "room-test", "Member_Account": "@RBT#001"}


@pytest.mark.parametrize(
    ("code", "cls"),
    [(100004, NotFoundError), (100005, NotRoomMemberError), (100700, LimitExceededError)],
)
async def test_room_errors_keep_the_request_id(respx_chat: RespxChat, code: int, cls: type) -> None:
    respx_chat.answer("room_engine_http_srv/add_robot", fail(code, RequestId="Id-9"))
    with pytest.raises(cls) as caught:
        await respx_chat.chat.add_robot_to_room("room-test", "@RBT#001")
    assert caught.value.request_id == "Id-9"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", "@RBT#1"), r"RoomId \(room_id\) must not be empty"),
        (("room", ""), r"Member_Account \(robot_account\) must not be empty"),
        ((7, "@RBT#1"), "must be a string, not int"),
        (("room", ["@RBT#1"]), "must be a string, not list"),
        (("room-\udcff", "@RBT#1"), "is not valid Unicode text"),
    ],
)
@pytest.mark.parametrize("method", ["add_robot_to_room", "remove_robot_from_room"])
async def test_bad_input_is_refused_before_anything_is_sent(
    method: str, args: tuple[object, object], match: str
) -> None:
    transport = ScriptedTransport()
    chat = TencentChat(1400000000, "k", base_url="http://h", transport=transport)
    with pytest.raises(ValidationError, match=match):
        await getattr(chat, method)(*args)
    assert transport.sent == []
