"""room_engine_http_srv: add_robot and its companion delete_robot."""

from __future__ import annotations

import attrs
import pytest

from tencent_chat_robots import (
    Call,
    InvalidParameterError,
    LimitExceededError,
    NotFoundError,
    NotRoomMemberError,
    TencentChat,
    ValidationError,
)
from tencent_chat_robots.testing.pytest_plugin import FakeChat

from .conftest import RespxChat, ScriptedTransport, fail, ok
from .test_robots import ROBOT_IDS


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


# --- ids, by the vendor's pages ---------------------------------------------------------

# Member_Account is a "robot ID" (room_engine_http_srv-add_robot.txt): a robot's UserID,
# held to create_robot's rule (the table in test_robots).


@pytest.mark.parametrize(("robot", "refusal"), ROBOT_IDS)
@pytest.mark.parametrize("method", ["add_robot_to_room", "remove_robot_from_room"])
async def test_the_member_is_a_robots_user_id(method: str, robot: str, refusal: str | None) -> None:
    transport = ScriptedTransport()
    chat = TencentChat(1400000000, "k", base_url="http://h", transport=transport, rate_limit=None)
    if refusal is None:
        await getattr(chat, method)("room-1", robot)
        assert transport.sent[0].body == {"RoomId": "room-1", "Member_Account": robot}
    else:
        with pytest.raises(ValidationError) as caught:
            await getattr(chat, method)("room-1", robot)
        assert str(caught.value) == f"Member_Account (robot_account) {refusal}"
        with pytest.raises(ValidationError):
            getattr(Call, method)("room-1", robot)
        assert transport.sent == []


@pytest.mark.parametrize("room_id", ["r" * 40, "房" * 100])  # 40 and 300 bytes
async def test_a_long_room_id_is_sent_as_the_page_gives_no_limit(room_id: str) -> None:
    # The page says only "RoomId String Required room ID": no length is checked here.
    transport = ScriptedTransport()
    chat = TencentChat(1400000000, "k", base_url="http://h", transport=transport, rate_limit=None)
    await chat.add_robot_to_room(room_id, "@RBT#001")
    assert transport.sent[0].body == {"RoomId": room_id, "Member_Account": "@RBT#001"}


async def test_the_fake_refuses_what_the_sdk_refuses(fake_chat: FakeChat) -> None:
    """The fake (the server's stand-in) answers 100002 to the ids the SDK refuses."""
    fake, chat = fake_chat
    fake.create_room("room-1")
    fake.create_robot("@RBT#001")
    for robot in ("bot1", "@RBT#" + "x" * 35):
        with attrs.validators.disabled():  # past the SDK's checks, as another client
            call = Call.add_robot_to_room("room-1", robot)
        with pytest.raises(InvalidParameterError) as caught:
            await chat.call(call)
        assert caught.value.code == 100002
    assert fake.room_members("room-1") == []


def test_a_room_id_that_is_no_text_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as refused:
        Call.add_robot_to_room(7, "@RBT#1")  # type: ignore[arg-type]
    assert str(refused.value) == "RoomId (room_id) must be a string, not int"
