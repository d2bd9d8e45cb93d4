"""openim_robot_http_svc: create_robot, get_all_robots, delete_robot."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tencent_chat_robots import ActionResult, InvalidRequestError, TencentChat, ValidationError

from .conftest import RespxChat, ScriptedTransport, fail, ok


async def test_create_robot_sends_the_documented_body(respx_chat: RespxChat) -> None:
    route = respx_chat.answer("openim_robot_http_svc/create_robot", ok())
    result = await respx_chat.chat.create_robot(
        "@RBT#001", nick="Jarvis", face_url="https://x/head.jpg", self_signature="hello, world"
    )
    assert result == ActionResult(request_id=None)
    assert route.call_count == 1
    (sent,) = respx_chat.sent()
    assert sent.path == "/v4/openim_robot_http_svc/create_robot"
    assert sent.body == {
        "UserID": "@RBT#001",
        "Nick": "Jarvis",
        "FaceUrl": "https://x/head.jpg",
        "SelfSignature": "hello, world",
    }
    assert respx_chat.router.calls[0].request.headers["content-type"] == "application/json"


async def test_unset_profile_fields_are_omitted_not_null(respx_chat: RespxChat) -> None:
    respx_chat.answer("openim_robot_http_svc/create_robot", ok())
    await respx_chat.chat.create_robot("@RBT#001", nick="Jarvis")
    assert respx_chat.sent()[0].body == {"UserID": "@RBT#001", "Nick": "Jarvis"}


async def test_get_all_robots_returns_the_list(respx_chat: RespxChat) -> None:
    respx_chat.answer(
        "openim_robot_http_svc/get_all_robots",
        ok(Robot_Account=["@RBT#001", "@RBT#002", "@RBT#003"]),
    )
    assert await respx_chat.chat.get_all_robots() == ["@RBT#001", "@RBT#002", "@RBT#003"]
    assert respx_chat.sent()[0].body == {}


async def test_get_all_robots_without_the_key_is_an_empty_list(respx_chat: RespxChat) -> None:
    respx_chat.answer("openim_robot_http_svc/get_all_robots", ok())
    assert await respx_chat.chat.get_all_robots() == []


async def test_delete_robot_sends_robot_account(respx_chat: RespxChat) -> None:
    respx_chat.answer("openim_robot_http_svc/delete_robot", ok())
    await respx_chat.chat.delete_robot("@RBT#001")
    (sent,) = respx_chat.sent()
    assert sent.path == "/v4/openim_robot_http_svc/delete_robot"
    assert sent.body == {"Robot_Account": "@RBT#001"}


async def test_robot_quota_is_invalid_request(respx_chat: RespxChat) -> None:
    respx_chat.answer("openim_robot_http_svc/create_robot", fail(10008, "limit"))
    with pytest.raises(InvalidRequestError) as caught:
        await respx_chat.chat.create_robot("@RBT#021")
    assert caught.value.code == 10008


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.create_robot("RBT#001"), r"UserID \(user_id\) must start with '@RBT#'"),
        (lambda c: c.create_robot("@RBT#" + "x" * 28), "at most 32 UTF-8 bytes, got 33"),
        (lambda c: c.create_robot("@RBT#" + "机器人" * 3 + "机"), "at most 32 UTF-8 bytes"),
        (lambda c: c.create_robot(42), "must be a string, not int"),
        (lambda c: c.create_robot("@RBT#1", self_signature="x" * 501), "SelfSignature"),
        (lambda c: c.create_robot("@RBT#1", nick="名" * 167), r"Nick \(nick\) must be at most 500"),
        (lambda c: c.create_robot("@RBT#1", face_url=b"x"), "must be a string, not bytes"),
        (lambda c: c.delete_robot("robot-1"), r"Robot_Account \(robot_account\) must start"),
        (lambda c: c.delete_robot(None), "must be a string, not NoneType"),
        (lambda c: c.create_robot("@RBT#\ud800"), "is not valid Unicode text"),
        (lambda c: c.create_robot("@RBT#1", nick="\udcff"), r"Nick \(nick\) is not valid Unicode"),
    ],
)
async def test_bad_input_is_refused_before_anything_is_sent(call, match: str) -> None:  # type: ignore[no-untyped-def]
    transport = ScriptedTransport()
    chat = TencentChat(1400000000, "k", base_url="http://h", transport=transport)
    with pytest.raises(ValidationError, match=match):
        await call(chat)
    assert transport.sent == []


async def test_limits_are_inclusive() -> None:
    transport = ScriptedTransport()
    chat = TencentChat(1400000000, "k", base_url="http://h", transport=transport, rate_limit=None)
    await chat.create_robot("@RBT#" + "x" * 27, self_signature="s" * 500)
    assert len(transport.sent) == 1


@settings(
    max_examples=100,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(user_id=st.text(max_size=40))
async def test_robot_ids_are_accepted_exactly_when_the_docs_allow(user_id: str) -> None:
    transport = ScriptedTransport()
    chat = TencentChat(1400000000, "k", base_url="http://h", transport=transport, rate_limit=None)
    allowed = user_id.startswith("@RBT#") and len(user_id.encode()) <= 32
    if allowed:
        await chat.create_robot(user_id)
        assert transport.sent[0].body == {"UserID": user_id}
    else:
        with pytest.raises(ValidationError):
            await chat.create_robot(user_id)
        assert transport.sent == []


# --- a robot's UserID, wherever a call names one ----------------------------------------

# Written from the vendor's pages, not from the SDK: create_robot's UserID and
# delete_robot's Robot_Account are "a string of up to 32 bytes in length and must start
# with @RBT#" (openim_robot_http_svc-create_robot.txt, -delete_robot.txt). Each id, and
# the refusal's words (None: allowed). Every call naming a robot is held to it (the room,
# live group and live room tests import this table).
ROBOT_IDS: list[tuple[str, str | None]] = [
    ("@RBT#001", None),  # the pages' sample
    ("@RBT#" + "x" * 27, None),  # 32 bytes: the most
    ("@RBT#" + "é" * 13 + "x", None),  # 32 bytes in 19 characters
    ("@RBT#" + "x" * 28, "must be at most 32 UTF-8 bytes, got 33"),
    ("@RBT#" + "é" * 14, "must be at most 32 UTF-8 bytes, got 33"),
    ("@RBT#" + "x" * 35, "must be at most 32 UTF-8 bytes, got 40"),  # issue 18's 40-byte id
    ("bot1", "must start with '@RBT#', got 'bot1'"),  # the live group page's sample
    ("user1", "must start with '@RBT#', got 'user1'"),  # the room page's sample
    ("RBT001", "must start with '@RBT#', got 'RBT001'"),
    ("RBT#001", "must start with '@RBT#', got 'RBT#001'"),
    (" @RBT#001", "must start with '@RBT#', got ' @RBT#001'"),
]


@pytest.mark.parametrize(("robot", "refusal"), ROBOT_IDS)
@pytest.mark.parametrize(
    ("method", "field"),
    [("create_robot", "UserID (user_id)"), ("delete_robot", "Robot_Account (robot_account)")],
)
async def test_robot_ids_by_the_pages(
    method: str, field: str, robot: str, refusal: str | None
) -> None:
    transport = ScriptedTransport()
    chat = TencentChat(1400000000, "k", base_url="http://h", transport=transport, rate_limit=None)
    if refusal is None:
        await getattr(chat, method)(robot)
        assert list(transport.sent[0].body.values()) == [robot]
    else:
        with pytest.raises(ValidationError) as refused:
            await getattr(chat, method)(robot)
        assert str(refused.value) == f"{field} {refusal}"
        assert transport.sent == []
