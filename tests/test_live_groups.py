"""group_open_avchatroom_http_svc: add_robots and its companion del_robots."""

from __future__ import annotations

import pytest

from tencent_chat_robots import (
    InvalidParameterError,
    NotFoundError,
    PermissionDeniedError,
    TencentChat,
    ValidationError,
)

from .conftest import RespxChat, ScriptedTransport, fail, ok


async def test_add_robots_sends_group_and_member_list(respx_chat: RespxChat) -> None:
    respx_chat.answer("group_open_avchatroom_http_svc/add_robots", ok())
    result = await respx_chat.chat.add_robots_to_live_group(
        "@TGS#a6I4ZUUGO", ("@RBT#001", "@RBT#002")
    )
    assert result.request_id is None
    (sent,) = respx_chat.sent()
    assert sent.path == "/v4/group_open_avchatroom_http_svc/add_robots"
    assert sent.body == {"GroupId": "@TGS#a6I4ZUUGO", "Member_Account": ["@RBT#001", "@RBT#002"]}


async def test_remove_robots_uses_del_robots(respx_chat: RespxChat) -> None:
    respx_chat.answer("group_open_avchatroom_http_svc/del_robots", ok())
    await respx_chat.chat.remove_robots_from_live_group("@TGS#a6I4ZUUGO", ["@RBT#001"])
    (sent,) = respx_chat.sent()
    assert sent.path == "/v4/group_open_avchatroom_http_svc/del_robots"
    assert sent.body == {"GroupId": "@TGS#a6I4ZUUGO", "Member_Account": ["@RBT#001"]}


@pytest.mark.parametrize(
    ("code", "cls"),
    [(10010, NotFoundError), (10015, InvalidParameterError), (10007, PermissionDeniedError)],
)
async def test_group_errors_are_typed(respx_chat: RespxChat, code: int, cls: type) -> None:
    respx_chat.answer("group_open_avchatroom_http_svc/add_robots", fail(code))
    with pytest.raises(cls):
        await respx_chat.chat.add_robots_to_live_group("@TGS#x", ["@RBT#1"])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", ["@RBT#1"]), r"GroupId \(group_id\) must not be empty"),
        (("@TGS#x", []), r"Member_Account \(robot_accounts\) must not be empty"),
        (("@TGS#x", "@RBT#1"), "must be a list of account ids, not str"),
        (("@TGS#x", ["@RBT#1", ""]), r"Member_Account \(robot_accounts\)\[1\] must be a non-empty"),
        (("@TGS#x", ["@RBT#1", 5]), r"\[1\] must be a non-empty string, got 5"),
        ((None, ["@RBT#1"]), "must be a string, not NoneType"),
        (("@TGS#x", ["@RBT#\ud800"]), r"\[0\] is not valid Unicode text"),
    ],
)
@pytest.mark.parametrize("method", ["add_robots_to_live_group", "remove_robots_from_live_group"])
async def test_bad_input_is_refused_before_anything_is_sent(
    method: str, args: tuple[object, object], match: str
) -> None:
    transport = ScriptedTransport()
    chat = TencentChat(1400000000, "k", base_url="http://h", transport=transport)
    with pytest.raises(ValidationError, match=match):
        await getattr(chat, method)(*args)
    assert transport.sent == []
