"""The events as parsed from the documented bodies, and the rules on their fields."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest

from tencent_chat_robots._elements import CustomElem, OtherElem, TextElem
from tencent_chat_robots.callbacks import (
    C2CMessage,
    GroupMention,
    RobotCallbacks,
    SignalMessage,
    UnknownEvent,
)

from ._helpers import (
    OK,
    SDKAPPID,
    TOKEN,
    Clock,
    Recorder,
    answer,
    c2c,
    encode,
    group,
    query,
    signal,
)

UTC = dt.timezone.utc


async def _handled(body: dict[str, Any], command: str | None = None) -> Any:
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=Clock())
    handler = Recorder(result="")
    for register in (
        bot.on_c2c_message,
        bot.on_group_mention,
        bot.on_signal_message,
        bot.on_unknown,
    ):
        register(handler)  # type: ignore[arg-type]
    status, _ = answer(await bot.dispatch(query(command or body["CallbackCommand"]), encode(body)))
    assert status == 200
    await bot.join()
    (event,) = handler.events
    return event


async def test_a_c2c_message_has_every_documented_field_under_a_python_name() -> None:
    body = c2c(
        MsgBody=[
            {"MsgType": "TIMTextElem", "MsgContent": {"Text": "hello, "}},
            {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "d", "Desc": "x", "Ext": "e"}},
            {"MsgType": "TIMFaceElem", "MsgContent": {"Index": 1, "Data": "smile"}},
            {"MsgType": "TIMTextElem", "MsgContent": {"Text": "world"}},
        ],
        OnlineOnlyFlag=1,
        CloudCustomData="ccd",
    )
    event = await _handled(body)
    assert isinstance(event, C2CMessage)
    assert (event.sender, event.robot, event.msg_key) == ("user-1", "@RBT#001", "key-1")
    assert (event.msg_seq, event.msg_random) == (123, 2_000_000_000)
    assert event.msg_time == dt.datetime(2022, 12, 1, 5, 21, 50, tzinfo=UTC)
    assert event.event_time == dt.datetime(2022, 12, 1, 5, 21, 50, 123000, tzinfo=UTC)
    assert event.msg_time.utcoffset() == dt.timedelta(0)
    assert event.msg_id == "144115233406641817-1669872110-2000000000"
    assert event.online_only is True
    assert event.send_msg_result == 0
    assert event.error_info == "send msg succeed"
    assert event.cloud_custom_data == "ccd"
    assert event.elements == (
        TextElem("hello, "),
        CustomElem("d", "x", "e"),
        OtherElem("TIMFaceElem", {"Index": 1, "Data": "smile"}),
        TextElem("world"),
    )
    assert event.text == "hello, world"
    assert (event.client_ip, event.opt_platform) == ("203.0.113.9", "Android")
    assert event.raw == body
    assert "raw" not in repr(event)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.text = "changed"  # type: ignore[misc]


async def test_a_group_mention_has_its_group_and_robots() -> None:
    event = await _handled(group(AtRobots_Account=["@RBT#001", "@RBT#002"], TopicId="t-1"))
    assert isinstance(event, GroupMention)
    assert (event.group_id, event.group_type, event.sender) == (
        "@TGS#2J4SZEAEL",
        "Public",
        "user-1",
    )
    assert (event.operator, event.random, event.msg_seq) == ("user-1", 2_946_777_063, 7)
    assert event.robots == ("@RBT#001", "@RBT#002")
    assert event.topic_id == "t-1"
    assert event.text == "@@RBT#001 hello"
    assert event.online_only is False
    assert event.event_time == dt.datetime(2022, 12, 1, 5, 21, 50, 456000, tzinfo=UTC)


async def test_a_signal_message_has_its_data() -> None:
    event = await _handled(signal())
    assert isinstance(event, SignalMessage)
    assert (event.sender, event.robot, event.msg_key, event.data) == (
        "user-1",
        "@RBT#001",
        "sig-1",
        '{"ask":"weather"}',
    )
    assert (event.msg_seq, event.msg_random) == (9, 42)


async def test_another_command_is_an_unknown_event() -> None:
    body = {"CallbackCommand": "Bot.OnSomethingNew", "Anything": [1, 2]}
    event = await _handled(body)
    assert event == UnknownEvent("Bot.OnSomethingNew", body)
    assert event.raw == body


async def test_optional_fields_may_be_absent() -> None:
    body = {"CallbackCommand": "Bot.OnC2CMessage", "From_Account": "u", "To_Account": "@RBT#1"}
    event = await _handled({**body, "MsgKey": "k"})
    assert (event.msg_seq, event.msg_time, event.event_time, event.msg_id) == (None,) * 4
    assert (event.elements, event.text, event.cloud_custom_data) == ((), "", "")
    assert event.online_only is False


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (c2c(MsgKey=None), "MsgKey is missing"),
        (c2c(MsgKey=""), "MsgKey is missing"),
        (c2c(From_Account=None), "From_Account is missing"),
        (c2c(To_Account=5), "To_Account is not a string"),
        (c2c(MsgSeq="123"), "MsgSeq is not an integer"),
        (c2c(MsgSeq=1.0), "MsgSeq is not an integer"),
        (c2c(MsgRandom=True), "MsgRandom is not an integer"),
        (c2c(MsgSeq=-1), "MsgSeq is out of range"),
        (c2c(MsgTime=10**13), "MsgTime is out of range"),
        (c2c(EventTime=10**17), "EventTime is out of range"),
        (c2c(MsgBody={"MsgType": "TIMTextElem"}), "MsgBody is not an array"),
        (c2c(MsgBody=[{"MsgType": "TIMTextElem", "MsgContent": {"Text": 5}}]), "MsgBody[0]"),
        (c2c(CloudCustomData=[]), "CloudCustomData is not a string"),
        (group(MsgSeq=None), "MsgSeq is missing"),
        (group(GroupId=None), "GroupId is missing"),
        (group(AtRobots_Account=None), "AtRobots_Account is not an array of strings"),
        (group(AtRobots_Account="@RBT#001"), "AtRobots_Account is not an array of strings"),
        (group(AtRobots_Account=["@RBT#001", 2]), "AtRobots_Account is not an array of strings"),
        # A mention of no robot: the event fires because robots were mentioned.
        (group(AtRobots_Account=[]), "AtRobots_Account is empty"),
        (group(AtRobots_Account=["@RBT#001", ""]), "AtRobots_Account is empty"),
        (signal(MsgKey=None), "MsgKey is missing"),
        (signal(Data={"ask": 1}), "Data is not a string"),
    ],
)
async def test_a_documented_field_of_the_wrong_type_or_a_required_one_missing_is_a_400(
    body: dict[str, Any], reason: str
) -> None:
    body = {name: value for name, value in body.items() if value is not None}
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=Clock())
    handler = Recorder(result="")
    bot.on_c2c_message(handler)
    bot.on_group_mention(handler)
    bot.on_signal_message(handler)
    status, answered = answer(await bot.dispatch(query(body["CallbackCommand"]), encode(body)))
    assert status == 400
    assert reason in answered["ErrorInfo"]
    assert bot.stats["refused:event"] == 1
    assert answer(await bot.dispatch(query(), encode(c2c("valid")))) == (200, OK)
    await bot.join()
    assert [event.msg_key for event in handler.events] == ["valid"]
