"""group_open_avchatroom_http_svc: add_robots and its companion del_robots."""

from __future__ import annotations

import attrs
import pytest

from tencent_chat_robots import (
    Call,
    InvalidParameterError,
    NotFoundError,
    PermissionDeniedError,
    TencentChat,
    ValidationError,
)
from tencent_chat_robots.testing.pytest_plugin import FakeChat

from .conftest import RespxChat, ScriptedTransport, fail, ok
from .test_robots import ROBOT_IDS


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


# --- ids, by the vendor's pages ---------------------------------------------------------

# Member_Account is the "List of robot accounts to be set"
# (group_open_avchatroom_http_svc-add_robots.txt): robots' UserIDs, each held to
# create_robot's rule (the table in test_robots), though the page's own sample names
# "bot1" and "bot2".


@pytest.mark.parametrize(("robot", "refusal"), ROBOT_IDS)
@pytest.mark.parametrize("method", ["add_robots_to_live_group", "remove_robots_from_live_group"])
async def test_each_member_is_a_robots_user_id(
    method: str, robot: str, refusal: str | None
) -> None:
    transport = ScriptedTransport()
    chat = TencentChat(1400000000, "k", base_url="http://h", transport=transport, rate_limit=None)
    members = ["@RBT#001", robot]
    if refusal is None:
        await getattr(chat, method)("@TGS#a6I4ZUUGO", members)
        assert transport.sent[0].body == {"GroupId": "@TGS#a6I4ZUUGO", "Member_Account": members}
    else:
        with pytest.raises(ValidationError) as caught:
            await getattr(chat, method)("@TGS#a6I4ZUUGO", members)
        assert str(caught.value) == f"Member_Account (robot_accounts)[1] {refusal}"
        with pytest.raises(ValidationError):
            getattr(Call, method)("@TGS#a6I4ZUUGO", members)
        assert transport.sent == []


async def test_a_group_id_is_sent_as_the_page_gives_no_rule_for_it() -> None:
    # The page says only "GroupId String Required ID of the operated group" (and lists
    # 10015, "invalid group ID"): the server judges it.
    transport = ScriptedTransport()
    chat = TencentChat(1400000000, "k", base_url="http://h", transport=transport, rate_limit=None)
    group_id = "@TGS#" + "g" * 60
    await chat.add_robots_to_live_group(group_id, ["@RBT#001"])
    assert transport.sent[0].body == {"GroupId": group_id, "Member_Account": ["@RBT#001"]}


async def test_the_fake_refuses_what_the_sdk_refuses(fake_chat: FakeChat) -> None:
    """The fake (the server's stand-in) answers 10004 to the ids the SDK refuses."""
    fake, chat = fake_chat
    fake.create_live_group("@TGS#live1")
    fake.create_robot("@RBT#001")
    for robot in ("bot1", "@RBT#" + "x" * 35):
        with attrs.validators.disabled():  # past the SDK's checks, as another client
            call = Call.add_robots_to_live_group("@TGS#live1", ["@RBT#001", robot])
        with pytest.raises(InvalidParameterError) as caught:
            await chat.call(call)
        assert caught.value.code == 10004
    assert fake.live_group_members("@TGS#live1") == []
