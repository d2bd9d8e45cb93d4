"""Simulated users: the fake delivers Bot.OnC2CMessage / Bot.OnGroupMessage to any webhook
(an ASGI app in-process, or a URL) exactly as robot-conversation.md section 1 describes,
and a bot replying through the SDK shows up in the fake's transcript.

The webhook here is a small recording ASGI app written for these tests, never the SDK's
own callbacks package: the fake must work against any receiver.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import anyio
import httpx
import pytest
from tests._clocks import WALL, ManualClock
from tests._virtual_time import VirtualClockLoop, run_virtual

from tencent_chat_robots import TencentChat
from tencent_chat_robots.testing import FakeTencentChat, callback_sign
from tencent_chat_robots.testing._serve import serve

ROBOT = "@RBT#001"
ROBOT2 = "@RBT#002"
USER = "user1"
TOKEN = "xxxxyyyy"
ACK = b'{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}'
C2C_FIELDS = {
    "CallbackCommand",
    "From_Account",
    "To_Account",
    "MsgSeq",
    "MsgRandom",
    "MsgTime",
    "MsgKey",
    "MsgId",
    "OnlineOnlyFlag",
    "SendMsgResult",
    "ErrorInfo",
    "MsgBody",
    "CloudCustomData",
    "EventTime",
}
GROUP_FIELDS = {
    "CallbackCommand",
    "GroupId",
    "Type",
    "From_Account",
    "Operator_Account",
    "Random",
    "MsgSeq",
    "MsgTime",
    "OnlineOnlyFlag",
    "MsgBody",
    "AtRobots_Account",
    "CloudCustomData",
    "EventTime",
}
T = TypeVar("T")


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    client: tuple[str, int] | None


class Receiver:
    """A webhook: records each callback, then answers ``status`` / ``answer`` (or never)."""

    def __init__(
        self,
        *,
        status: int = 200,
        answer: bytes = ACK,
        hang: bool = False,
        then: Callable[[Seen], Awaitable[None]] | None = None,
    ) -> None:
        self.status = status
        self.answer = answer
        self.hang = hang
        self.then = then
        self.seen: list[Seen] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body", False):
                break
        query = dict(parse_qsl(scope["query_string"].decode(), keep_blank_values=True))
        client = scope.get("client")
        seen = Seen(scope["path"], query, json.loads(raw), tuple(client) if client else None)
        self.seen.append(seen)
        if self.hang:
            await anyio.sleep_forever()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.answer})
        if self.then is not None:  # acknowledge first, work afterwards
            task = asyncio.get_running_loop().create_task(self.then(seen))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)


@pytest.fixture
async def fake() -> Any:
    async with FakeTencentChat(wall_clock=ManualClock(WALL)) as fake:
        fake.create_robot(ROBOT)
        fake.create_robot(ROBOT2)
        yield fake


def sha256_sign(token: str, request_time: str) -> str:
    """The documented formula, written out: hex(sha256(Token + RequestTime))."""
    return hashlib.sha256((token + request_time).encode("utf-8")).hexdigest()


# --- Bot.OnC2CMessage from a simulated user ---


async def test_a_user_message_is_delivered_signed_as_chat_does(fake: FakeTencentChat) -> None:
    receiver = Receiver()
    fake.set_callback(receiver, token=TOKEN, path="/tencent/callback")
    [delivery] = await fake.user_sends(USER, ROBOT, "hi", cloud_custom_data="cd")

    [seen] = receiver.seen
    assert seen.path == "/tencent/callback"
    assert seen.query == {
        "SdkAppid": str(fake.sdkappid),
        "CallbackCommand": "Bot.OnC2CMessage",
        "contenttype": "json",
        "ClientIP": "127.0.0.1",
        "OptPlatform": "Web",
        "Sign": sha256_sign(TOKEN, str(int(WALL))),
        "RequestTime": str(int(WALL)),
    }
    assert set(seen.body) == C2C_FIELDS
    [message] = fake.transcript(USER, ROBOT)
    assert seen.body == {
        "CallbackCommand": "Bot.OnC2CMessage",
        "From_Account": USER,
        "To_Account": ROBOT,
        "MsgSeq": message.msg_seq,
        "MsgRandom": message.random,
        "MsgTime": int(WALL),
        "MsgKey": message.msg_key,
        "MsgId": seen.body["MsgId"],
        "OnlineOnlyFlag": 0,
        "SendMsgResult": 0,
        "ErrorInfo": "send msg succeed",
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}],
        "CloudCustomData": "cd",
        "EventTime": int(WALL * 1000),
    }
    assert isinstance(seen.body["MsgId"], str)
    assert (message.sender, message.recipient, message.text, message.platform) == (
        USER,
        ROBOT,
        "hi",
        "Web",
    )
    assert USER in fake.users  # imported by sending
    assert delivery.ok
    assert (delivery.status, delivery.answer, delivery.outcome, delivery.attempt) == (
        200,
        json.loads(ACK),
        "ok",
        1,
    )
    assert delivery.body == seen.body
    assert fake.callback_deliveries == [delivery]


def test_the_documented_sign_example() -> None:
    expected = "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061"
    assert sha256_sign("xxxxyyyy", "1669872112") == expected
    assert callback_sign("xxxxyyyy", 1669872112) == expected


async def test_a_stale_request_time_is_sent_and_signed(fake: FakeTencentChat) -> None:
    receiver = Receiver()
    fake.set_callback(receiver, token=TOKEN)
    await fake.user_sends(USER, ROBOT, "hi", request_time=1669872112)
    [seen] = receiver.seen
    assert seen.query["RequestTime"] == "1669872112"
    assert seen.query["Sign"] == "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061"
    assert seen.body["MsgTime"] == int(WALL)  # the message itself is current


async def test_without_a_token_there_is_no_sign(fake: FakeTencentChat) -> None:
    receiver = Receiver()
    fake.set_callback(receiver)
    await fake.user_sends(USER, ROBOT, "hi", platform="Android")
    [seen] = receiver.seen
    assert set(seen.query) == {
        "SdkAppid",
        "CallbackCommand",
        "contenttype",
        "ClientIP",
        "OptPlatform",
    }
    assert seen.query["OptPlatform"] == "Android"


async def test_times_2_delivers_the_same_event_twice(fake: FakeTencentChat) -> None:
    receiver = Receiver()
    fake.set_callback(receiver, token=TOKEN)
    deliveries = await fake.user_sends(USER, ROBOT, "hi", times=2)
    assert [d.ok for d in deliveries] == [True, True]
    first, second = receiver.seen
    assert first.body == second.body
    assert len(fake.transcript(USER, ROBOT)) == 1  # one message, delivered twice


async def test_each_message_has_its_own_key(fake: FakeTencentChat) -> None:
    receiver = Receiver()
    fake.set_callback(receiver)
    await fake.user_sends(USER, ROBOT, "one")
    await fake.user_sends(USER, ROBOT, "two")
    keys = [seen.body["MsgKey"] for seen in receiver.seen]
    assert len(set(keys)) == 2
    assert [m.msg_key for m in fake.transcript(USER, ROBOT)] == keys


async def test_the_apps_failures_are_recorded(fake: FakeTencentChat) -> None:
    fake.set_callback(Receiver(status=500, answer=b"<html>oops</html>"))
    [failed] = await fake.user_sends(USER, ROBOT, "hi")
    assert (failed.ok, failed.status, failed.outcome, failed.answer) == (
        False,
        500,
        "http_status",
        None,
    )
    fake.set_callback(Receiver(status=403, answer=b'{"error": "bad sign"}'))
    [refused] = await fake.user_sends(USER, ROBOT, "hi")
    assert (refused.outcome, refused.answer) == ("http_status", {"error": "bad sign"})
    fake.set_callback(Receiver(answer=b"OK"))
    [not_json] = await fake.user_sends(USER, ROBOT, "hi")
    assert (not_json.ok, not_json.status, not_json.outcome) == (False, 200, "not_json")
    assert [d.outcome for d in fake.callback_deliveries] == [
        "http_status",
        "http_status",
        "not_json",
    ]


async def test_a_url_that_refuses_connections(fake: FakeTencentChat) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fake.set_callback(f"http://127.0.0.1:{port}/callback")
    [delivery] = await fake.user_sends(USER, ROBOT, "hi")
    assert (delivery.outcome, delivery.status) == ("connection_error", None)


# --- time: the 2 s limit, retries, delay (on an event loop whose clock jumps) ---


def test_an_answer_later_than_2_s_is_a_failed_callback() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        async with FakeTencentChat() as fake:
            fake.create_robot(ROBOT)
            fake.set_callback(Receiver(hang=True))
            start = loop.time()
            [delivery] = await fake.user_sends(USER, ROBOT, "hi")
            waited = loop.time() - start
            assert (delivery.ok, delivery.outcome, delivery.status) == (False, "timeout", None)
            assert 2.0 <= waited < 2.1  # Chat's 2 s, not retried by default

    run_virtual(main)


def test_retry_on_timeout_redelivers_the_same_message() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        async with FakeTencentChat() as fake:
            fake.create_robot(ROBOT)
            receiver = Receiver(hang=True)
            fake.set_callback(receiver, token=TOKEN, timeout=0.5, retry_on_timeout=2)
            deliveries = await fake.user_sends(USER, ROBOT, "hi")
            assert [(d.attempt, d.outcome) for d in deliveries] == [
                (1, "timeout"),
                (2, "timeout"),
                (3, "timeout"),
            ]
            assert len({seen.body["MsgKey"] for seen in receiver.seen}) == 1
            assert len(receiver.seen) == 3
            # An answered callback is not sent again.
            receiver.hang = False
            assert len(await fake.user_sends(USER, ROBOT, "again")) == 1

    run_virtual(main)


def test_delay_delivers_late() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        async with FakeTencentChat(wall_clock=lambda: WALL + loop.time()) as fake:
            fake.create_robot(ROBOT)
            receiver = Receiver()
            fake.set_callback(receiver, token=TOKEN)
            start = loop.time()
            await fake.user_sends(USER, ROBOT, "hi", delay=90.0)
            assert loop.time() - start >= 90.0
            [seen] = receiver.seen
            # The event is as old as the message; the request is signed when sent.
            sent = int(WALL + start)
            assert seen.body["MsgTime"] == sent
            assert seen.body["EventTime"] // 1000 == sent
            assert int(seen.query["RequestTime"]) >= sent + 90
            assert seen.query["Sign"] == sha256_sign(TOKEN, seen.query["RequestTime"])

    run_virtual(main)


# --- Bot.OnC2CMessage from REST sendmsg ---


async def test_an_admin_sendmsg_to_a_robot_fires_the_callback(fake: FakeTencentChat) -> None:
    receiver = Receiver()
    fake.set_callback(receiver, token=TOKEN)
    async with fake.client() as chat:
        sent = await chat.send_c2c_message(None, ROBOT, "from the admin", msg_lifetime=0)
        with anyio.fail_after(5):
            await fake.wait_deliveries()
    [seen] = receiver.seen
    assert seen.query["OptPlatform"] == "RESTAPI"
    assert seen.query["Sign"] == sha256_sign(TOKEN, seen.query["RequestTime"])
    assert set(seen.body) == C2C_FIELDS
    assert (seen.body["From_Account"], seen.body["To_Account"]) == (fake.admin, ROBOT)
    assert (seen.body["MsgKey"], seen.body["MsgRandom"]) == (sent.msg_key, sent.random)
    assert seen.body["OnlineOnlyFlag"] == 1  # MsgLifeTime 0: online only
    assert [d.outcome for d in fake.callback_deliveries] == ["ok"]


async def test_a_robot_messaging_a_robot_fires_it_too(fake: FakeTencentChat) -> None:
    receiver = Receiver()
    fake.set_callback(receiver)
    async with fake.client() as chat:
        await chat.send_c2c_message(ROBOT, ROBOT2, "loop?")
        with anyio.fail_after(5):
            await fake.wait_deliveries()
    [seen] = receiver.seen
    assert (seen.body["From_Account"], seen.body["To_Account"]) == (ROBOT, ROBOT2)


async def test_a_sendmsg_to_a_user_or_a_repeat_fires_nothing(fake: FakeTencentChat) -> None:
    receiver = Receiver()
    fake.set_callback(receiver)
    fake.create_user(USER)
    async with fake.client() as chat:
        await chat.send_c2c_message(ROBOT, USER, "to a user")
        await chat.send_c2c_message(USER, ROBOT, "first", random=5, msg_seq=9)
        await chat.send_c2c_message(USER, ROBOT, "first", random=5, msg_seq=9)  # a repeat: dropped
        with anyio.fail_after(5):
            await fake.wait_deliveries()
    assert [seen.body["MsgBody"][0]["MsgContent"]["Text"] for seen in receiver.seen] == ["first"]


async def test_no_callback_set_means_no_delivery(fake: FakeTencentChat) -> None:
    async with fake.client() as chat:
        await chat.send_c2c_message(None, ROBOT, "nobody listens")
    with anyio.fail_after(5):
        await fake.wait_deliveries()
    assert fake.callback_deliveries == []
    with pytest.raises(RuntimeError, match="set_callback"):
        await fake.user_sends(USER, ROBOT, "hi")
    assert fake.transcript(USER, ROBOT) == []


# --- Bot.OnGroupMessage ---


async def test_a_mention_in_a_group_is_stored_and_delivered(fake: FakeTencentChat) -> None:
    receiver = Receiver()
    fake.set_callback(receiver, token=TOKEN)
    fake.create_group("@TGS#public", "Public", [ROBOT, ROBOT2])
    [delivery] = await fake.user_mentions("@TGS#public", USER, [ROBOT, ROBOT2], "hello")
    assert delivery.ok
    [seen] = receiver.seen
    assert seen.query["CallbackCommand"] == "Bot.OnGroupMessage"
    assert seen.query["Sign"] == sha256_sign(TOKEN, seen.query["RequestTime"])
    assert set(seen.body) == GROUP_FIELDS  # no TopicId outside communities
    [message] = fake.group_messages("@TGS#public")
    assert message.text == "@@RBT#001 @@RBT#002 hello"
    assert message.mentions == (ROBOT, ROBOT2)
    assert seen.body == {
        "CallbackCommand": "Bot.OnGroupMessage",
        "GroupId": "@TGS#public",
        "Type": "Public",
        "From_Account": USER,
        "Operator_Account": USER,
        "Random": message.random,
        "MsgSeq": 1,
        "MsgTime": int(WALL),
        "OnlineOnlyFlag": 0,
        "MsgBody": [
            {"MsgType": "TIMTextElem", "MsgContent": {"Text": "@@RBT#001 @@RBT#002 hello"}}
        ],
        "AtRobots_Account": [ROBOT, ROBOT2],
        "CloudCustomData": "",
        "EventTime": int(WALL * 1000),
    }
    assert USER in fake.group_members("@TGS#public")  # the user joined to speak


async def test_the_documented_example_text(fake: FakeTencentChat) -> None:
    fake.set_callback(Receiver())
    fake.create_live_group("@TGS#live")
    fake.add_live_group_members("@TGS#live", [ROBOT])
    first, second = await fake.user_mentions("@TGS#live", USER, [ROBOT], "hello", times=2)
    assert first.body["MsgBody"][0]["MsgContent"]["Text"] == "@@RBT#001 hello"
    assert (first.body["Type"], first.body["OnlineOnlyFlag"]) == ("AVChatRoom", 0)
    assert second.body == first.body  # the same event: same GroupId and MsgSeq
    assert fake.callback_deliveries == [first, second]
    assert len(fake.group_messages("@TGS#live")) == 1


async def test_a_community_topic(fake: FakeTencentChat) -> None:
    receiver = Receiver()
    fake.set_callback(receiver)
    fake.create_group("@TGS#community", "Community", [ROBOT])
    await fake.user_mentions(
        "@TGS#community", USER, [ROBOT], "hi", topic_id="@TGS#community@TOPIC#1"
    )
    assert receiver.seen[0].body["TopicId"] == "@TGS#community@TOPIC#1"
    assert set(receiver.seen[0].body) == GROUP_FIELDS | {"TopicId"}
    fake.create_group("@TGS#public", "Public", [ROBOT])
    with pytest.raises(ValueError, match="Community"):
        await fake.user_mentions("@TGS#public", USER, [ROBOT], "hi", topic_id="t")


async def test_mention_refusals(fake: FakeTencentChat) -> None:
    fake.set_callback(Receiver())
    fake.create_group("@TGS#g", "Public", [ROBOT])
    with pytest.raises(ValueError, match="not in group"):
        await fake.user_mentions("@TGS#g", USER, [ROBOT2], "hi")
    with pytest.raises(ValueError, match="valid robot"):
        await fake.user_mentions("@TGS#g", USER, ["@RBT#ghost"], "hi")
    with pytest.raises(ValueError, match="non-empty list"):
        await fake.user_mentions("@TGS#g", USER, [], "hi")
    with pytest.raises(KeyError):
        await fake.user_mentions("@TGS#nope", USER, [ROBOT], "hi")
    assert fake.group_messages("@TGS#g") == []
    assert fake.callback_deliveries == []


async def test_user_sends_refusals(fake: FakeTencentChat) -> None:
    fake.set_callback(Receiver())
    with pytest.raises(ValueError, match="valid robot"):
        await fake.user_sends(USER, "@RBT#ghost", "hi")
    with pytest.raises(ValueError, match="platform"):
        await fake.user_sends(USER, ROBOT, "hi", platform="Fax")
    with pytest.raises(ValueError, match="times"):
        await fake.user_sends(USER, ROBOT, "hi", times=0)
    with pytest.raises(ValueError, match="delay"):
        await fake.user_sends(USER, ROBOT, "hi", delay=-1)
    with pytest.raises(ValueError, match="http"):
        fake.set_callback("ftp://example.com/")
    with pytest.raises(TypeError):
        fake.set_callback(42)  # type: ignore[arg-type]
    assert fake.callback_deliveries == []
    assert fake.transcript(USER, ROBOT) == []


# --- a URL target over a real socket ---


async def test_a_url_callback_over_keep_alive_http(fake: FakeTencentChat) -> None:
    receiver = Receiver()
    async with serve(receiver) as base_url:
        fake.set_callback(f"{base_url}/tencent/callback?app=1", token=TOKEN)
        await fake.user_sends(USER, ROBOT, "one")
        await fake.user_sends(USER, ROBOT, "two")
        await fake.aclose()  # closes the connection before the server stops
    first, second = receiver.seen
    assert first.path == "/tencent/callback"
    assert first.query["app"] == "1"
    assert first.query["Sign"] == sha256_sign(TOKEN, first.query["RequestTime"])
    assert first.client == second.client  # one connection, kept alive
    assert [d.outcome for d in fake.callback_deliveries] == ["ok", "ok"]


# --- the SDK's client against the fake; an echo bot ---


async def test_the_sdk_sends_and_modifies_through_the_fake(fake: FakeTencentChat) -> None:
    fake.create_user(USER)
    fake.create_group("@TGS#g", "Public", [ROBOT])
    async with fake.client() as chat:
        sent = await chat.send_c2c_message(ROBOT, USER, "hi")
        [message] = fake.transcript(USER, ROBOT)
        assert message.msg_key == sent.msg_key
        assert (message.random, message.text) == (sent.random, "hi")
        assert int(sent.msg_time.timestamp()) == int(WALL)

        await chat.modify_c2c_message(ROBOT, USER, sent.msg_key, body="hi, edited")
        [message] = fake.transcript(USER, ROBOT)
        assert (message.text, message.texts) == ("hi, edited", ["hi", "hi, edited"])

        first = await chat.send_group_message("@TGS#g", "hey", from_account=ROBOT, random=9)
        again = await chat.send_group_message("@TGS#g", "hey", from_account=ROBOT, random=9)
        assert first.msg_seq == again.msg_seq == 1
        assert len(fake.group_messages("@TGS#g")) == 1

        await chat.modify_group_message("@TGS#g", first.msg_seq, body="hey, edited")
        assert fake.group_messages("@TGS#g")[0].text == "hey, edited"


async def test_an_echo_bot(fake: FakeTencentChat) -> None:
    chat: TencentChat = fake.client()

    async def echo(seen: Seen) -> None:
        body = seen.body
        if body["From_Account"].startswith("@RBT#"):
            return  # the docs' loop guard
        text = body["MsgBody"][0]["MsgContent"]["Text"]
        await chat.send_c2c_message(body["To_Account"], body["From_Account"], f"you said: {text}")

    receiver = Receiver(then=echo)
    fake.set_callback(receiver, token=TOKEN)
    try:
        [delivery] = await fake.user_sends(USER, ROBOT, "ping")
        assert delivery.ok
        with anyio.fail_after(5):
            await fake.wait_until(lambda: len(fake.transcript(USER, ROBOT)) == 2)
    finally:
        await chat.aclose()
    question, reply = fake.transcript(USER, ROBOT)
    assert (question.sender, question.text) == (USER, "ping")
    assert (reply.sender, reply.recipient, reply.text) == (ROBOT, USER, "you said: ping")
    assert reply.platform == "RESTAPI"


# --- callbacks caused by REST calls, whatever carries them ---


async def test_a_send_dropped_after_processing_and_retried_calls_back_once(
    fake: FakeTencentChat,
) -> None:
    receiver = Receiver()
    fake.set_callback(receiver)
    fake.drop_next("send_c2c_message", after_processing=True)
    async with fake.client() as chat:
        sent = await chat.send_c2c_message(None, ROBOT, "once")  # retried: same MsgRandom
        with anyio.fail_after(5):
            await fake.wait_deliveries()
    assert [c.endpoint for c in fake.calls] == ["openim/sendmsg", "openim/sendmsg"]
    [message] = fake.transcript(fake.admin, ROBOT)
    assert message.msg_key == sent.msg_key
    [seen] = receiver.seen
    assert seen.body["MsgKey"] == sent.msg_key


async def test_a_fake_served_on_a_socket_calls_back_too(fake: FakeTencentChat) -> None:
    receiver = Receiver()
    fake.set_callback(receiver, token=TOKEN)
    query = {
        "sdkappid": str(fake.sdkappid),
        "identifier": fake.admin,
        "usersig": fake.usersig(),
        "random": "1",
        "contenttype": "json",
    }
    body = {
        "To_Account": ROBOT,
        "MsgRandom": 3,
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "over TCP"}}],
    }
    async with fake.serve() as base_url, httpx.AsyncClient(base_url=base_url) as http:
        response = await http.post("/v4/openim/sendmsg", params=query, json=body)
        assert response.json()["ErrorCode"] == 0
        with anyio.fail_after(5):
            await fake.wait_until(lambda: len(fake.callback_deliveries) == 1)
    [seen] = receiver.seen
    assert seen.body["MsgKey"] == response.json()["MsgKey"]
    assert seen.query["OptPlatform"] == "RESTAPI"
