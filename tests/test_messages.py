"""Replies as a robot: the four message APIs' bodies, rules, results, retries and pacing.

Rules and codes are written from robot-conversation.md, sections 2.1, 2.2 and 2.4.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from datetime import datetime, timezone
from typing import Any

import pytest

from tencent_chat_robots import (
    APIConnectionError,
    BadResponseError,
    Call,
    CustomElem,
    InternalServerError,
    InvalidParameterError,
    MessageRejectedError,
    NotFoundError,
    PermissionDeniedError,
    QueueTimeoutError,
    RateLimiter,
    RateLimitError,
    SentGroupMessage,
    SentMessage,
    TencentChat,
    TextElem,
    ValidationError,
)
from tencent_chat_robots._exceptions import error_class_for

from ._virtual_time import max_in_window, run_virtual
from .conftest import ADMIN, BASE_URL, SDKAPPID, SECRET_KEY, ScriptedTransport, SentRequest

OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
SENT = {**OK, "MsgTime": 1669872112, "MsgKey": "46896_1669872112_1"}
GROUP_SENT = {**OK, "MsgTime": 1669872112, "MsgSeq": 7}


def _error(code: int) -> dict[str, Any]:
    return {"ActionStatus": "FAIL", "ErrorCode": code, "ErrorInfo": f"error {code}"}


# -- bodies, as the pages name the fields ------------------------------------------------


async def test_a_text_reply_is_sent_as_the_robot_with_one_text_element(make_chat: Any) -> None:
    transport = ScriptedTransport(SENT)
    async with make_chat(transport) as chat:
        sent = await chat.send_c2c_message("@RBT#001", "user1", "you said: hi")
    (request,) = transport.sent
    assert request.path == "/v4/openim/sendmsg"
    body = request.body
    assert body["From_Account"] == "@RBT#001"
    assert body["To_Account"] == "user1"
    assert body["MsgBody"] == [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "you said: hi"}}]
    assert 0 <= body["MsgRandom"] <= 0xFFFFFFFF
    assert isinstance(sent, SentMessage)
    assert sent.msg_key == "46896_1669872112_1"
    assert sent.msg_time == datetime(2022, 12, 1, 5, 21, 52, tzinfo=timezone.utc)
    assert sent.random == body["MsgRandom"]


async def test_every_option_goes_out_under_its_documented_name(make_chat: Any) -> None:
    transport = ScriptedTransport(SENT)
    async with make_chat(transport) as chat:
        await chat.send_c2c_message(
            "@RBT#001",
            "user1",
            [
                TextElem("a"),
                CustomElem(data="{}", desc="d", ext="e"),
                {"MsgType": "TIMFaceElem", "MsgContent": {"Index": 1}},
            ],
            msg_lifetime=604800,
            sync_other_machine=2,
            cloud_custom_data="cc",
            forbid_callbacks=["ForbidBeforeSendMsgCallback"],
            send_control=["NoUnread", "WithMuteNotifications"],
            offline_push={"PushFlag": 0},
            msg_seq=5,
            random=9,
        )
    assert transport.sent[0].body == {
        "From_Account": "@RBT#001",
        "To_Account": "user1",
        "MsgBody": [
            {"MsgType": "TIMTextElem", "MsgContent": {"Text": "a"}},
            {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "{}", "Desc": "d", "Ext": "e"}},
            {"MsgType": "TIMFaceElem", "MsgContent": {"Index": 1}},
        ],
        "MsgRandom": 9,
        "MsgSeq": 5,
        "MsgLifeTime": 604800,
        "SyncOtherMachine": 2,
        "ForbidCallbackControl": ["ForbidBeforeSendMsgCallback"],
        "SendMsgControl": ["NoUnread", "WithMuteNotifications"],
        "CloudCustomData": "cc",
        "OfflinePushInfo": {"PushFlag": 0},
    }


async def test_the_admin_sends_when_no_sender_is_named(make_chat: Any) -> None:
    transport = ScriptedTransport(SENT)
    async with make_chat(transport) as chat:
        await chat.send_c2c_message(None, "@RBT#001", "ping")
    assert "From_Account" not in transport.sent[0].body


async def test_a_group_reply_names_the_group_the_robot_and_a_random(make_chat: Any) -> None:
    transport = ScriptedTransport(GROUP_SENT)
    async with make_chat(transport) as chat:
        sent = await chat.send_group_message(
            "@TGS#1", "hello", from_account="@RBT#001", online_only=True, msg_priority="High"
        )
    (request,) = transport.sent
    assert request.path == "/v4/group_open_http_svc/send_group_msg"
    assert request.body == {
        "GroupId": "@TGS#1",
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hello"}}],
        "Random": request.body["Random"],
        "From_Account": "@RBT#001",
        "MsgPriority": "High",
        "OnlineOnlyFlag": 1,
    }
    assert sent == SentGroupMessage(
        7, datetime(2022, 12, 1, 5, 21, 52, tzinfo=timezone.utc), request.body["Random"]
    )


async def test_modifications_go_to_openim_with_their_keys(make_chat: Any) -> None:
    transport = ScriptedTransport(OK)
    async with make_chat(transport) as chat:
        await chat.modify_c2c_message("@RBT#001", "user1", "k1", body="new text")
        await chat.modify_group_message("@TGS#1", 7, cloud_custom_data="x")
    first, second = transport.sent
    assert first.path == "/v4/openim/modify_c2c_msg"
    assert first.body == {
        "From_Account": "@RBT#001",
        "To_Account": "user1",
        "MsgKey": "k1",
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "new text"}}],
    }
    assert second.path == "/v4/openim/modify_group_msg"
    assert second.body == {"GroupId": "@TGS#1", "MsgSeq": 7, "CloudCustomData": "x"}


# -- documented rules, refused before anything is sent ----------------------------------

BAD_C2C = [
    ({"msg_lifetime": 604801}, "MsgLifeTime"),
    ({"msg_lifetime": -1}, "MsgLifeTime"),
    ({"msg_lifetime": 1.5}, "MsgLifeTime"),
    ({"sync_other_machine": 3}, "SyncOtherMachine"),
    ({"send_control": ["NoPush"]}, "SendMsgControl"),
    ({"send_control": "NoUnread"}, "SendMsgControl"),
    ({"forbid_callbacks": ["ForbidEverything"]}, "ForbidCallbackControl"),
    ({"random": 2**32}, "MsgRandom"),
    ({"random": -1}, "MsgRandom"),
    ({"msg_seq": 2**32}, "MsgSeq"),
    ({"offline_push": "push"}, "OfflinePushInfo"),
    ({"cloud_custom_data": "\ud800"}, "CloudCustomData"),
]


@pytest.mark.parametrize(("options", "named"), BAD_C2C)
async def test_a_c2c_option_breaking_its_rule_is_refused_unsent(
    make_chat: Any, options: dict[str, Any], named: str
) -> None:
    transport = ScriptedTransport(SENT)
    async with make_chat(transport) as chat:
        with pytest.raises(ValidationError, match=named):
            await chat.send_c2c_message("@RBT#001", "user1", "hi", **options)
    assert transport.sent == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ([], "at least one element"),
        ("\udcff", "not valid Unicode"),
        ([{"MsgType": "TIMTextElem", "MsgContent": {"Text": 5}}], r"MsgBody\[0\]"),
        ([{"MsgType": "TIMTextElem"}], "MsgContent"),
        ([{"MsgContent": {}}], "MsgType"),
        ([42], "TextElem"),
        (b"bytes", "str or a list"),
        (None, "str or a list"),
    ],
)
async def test_a_malformed_message_is_refused_unsent(make_chat: Any, body: Any, named: str) -> None:
    transport = ScriptedTransport(SENT)
    async with make_chat(transport) as chat:
        with pytest.raises(ValidationError, match=named):
            await chat.send_c2c_message("@RBT#001", "user1", body)
        with pytest.raises(ValidationError, match=named):
            await chat.send_group_message("@TGS#1", body)
    assert transport.sent == []


async def test_a_message_may_fill_12_kb_and_not_one_byte_more(make_chat: Any) -> None:
    # The usage-limits page: a message is at most 12 KB. Measured on MsgBody's JSON plus
    # CloudCustomData: the text element's envelope is this long around its text.
    envelope = len('[{"MsgType":"TIMTextElem","MsgContent":{"Text":""}}]')
    fits = "x" * (12 * 1024 - envelope)
    transport = ScriptedTransport(SENT)
    async with make_chat(transport) as chat:
        await chat.send_c2c_message("@RBT#001", "user1", fits)
        with pytest.raises(ValidationError, match="12 KB"):
            await chat.send_c2c_message("@RBT#001", "user1", fits + "x")
        with pytest.raises(ValidationError, match="12 KB"):
            await chat.send_group_message("@TGS#1", "hi", cloud_custom_data="é" * 6144)
    assert len(transport.sent) == 1


async def test_required_fields_and_modifications_without_content_are_refused(
    make_chat: Any,
) -> None:
    transport = ScriptedTransport(OK)
    async with make_chat(transport) as chat:
        with pytest.raises(ValidationError, match="To_Account"):
            await chat.send_c2c_message("@RBT#001", "", "hi")
        with pytest.raises(ValidationError, match="GroupId"):
            await chat.send_group_message("", "hi")
        with pytest.raises(ValidationError, match="MsgPriority"):
            await chat.send_group_message("@TGS#1", "hi", msg_priority="Urgent")
        with pytest.raises(ValidationError, match="SendMsgControl"):  # no WithMuteNotifications
            await chat.send_group_message("@TGS#1", "hi", send_control=["WithMuteNotifications"])
        with pytest.raises(ValidationError, match="body or the custom data"):
            await chat.modify_c2c_message("@RBT#001", "user1", "k1")
        with pytest.raises(ValidationError, match="MsgKey"):
            await chat.modify_c2c_message("@RBT#001", "user1", "", body="x")
        with pytest.raises(ValidationError, match="MsgSeq"):
            await chat.modify_group_message("@TGS#1", None, body="x")  # type: ignore[arg-type]
    assert transport.sent == []


# -- codes, answers and retries -----------------------------------------------------------

# Written from the page's code list (2.1, 2.2), not from the SDK's table.
DOCUMENTED_CODES = [
    (20001, InvalidParameterError),
    (20003, NotFoundError),
    (20004, InternalServerError),
    (20005, InternalServerError),
    (20006, MessageRejectedError),
    (20007, MessageRejectedError),
    (20009, MessageRejectedError),
    (20012, MessageRejectedError),
    (90001, InvalidParameterError),
    (90002, InvalidParameterError),
    (90003, InvalidParameterError),
    (90005, InvalidParameterError),
    (90007, InvalidParameterError),
    (90008, InvalidParameterError),
    (90009, PermissionDeniedError),
    (90010, InvalidParameterError),
    (90026, InvalidParameterError),
    (90048, NotFoundError),
    (90992, InternalServerError),
    (90994, InternalServerError),
    (90995, InternalServerError),
    (91000, InternalServerError),
    (93000, InvalidParameterError),
    (80001, MessageRejectedError),
    (80002, InvalidParameterError),
    (10002, InternalServerError),
    (10004, InvalidParameterError),
    (10007, PermissionDeniedError),
    (10010, NotFoundError),
    (10015, InvalidParameterError),
    (10016, MessageRejectedError),
    (10017, MessageRejectedError),
    (10019, NotFoundError),
    (10023, RateLimitError),
]


@pytest.mark.parametrize(("code", "cls"), DOCUMENTED_CODES)
def test_each_documented_message_code_has_its_class(code: int, cls: type) -> None:
    assert error_class_for(code) is cls


@pytest.mark.parametrize(
    ("code", "retried"),
    [(20004, True), (90995, True), (20006, False), (80001, False), (90048, False)],
)
async def test_only_the_documented_internal_errors_are_retried(
    make_chat: Any, no_backoff: None, code: int, retried: bool
) -> None:
    transport = ScriptedTransport(_error(code), SENT)
    async with make_chat(transport) as chat:
        if retried:
            await chat.send_c2c_message("@RBT#001", "user1", "hi")
        else:
            with pytest.raises(error_class_for(code)):
                await chat.send_c2c_message("@RBT#001", "user1", "hi")
    assert len(transport.sent) == (2 if retried else 1)


async def test_a_retry_after_a_dropped_answer_resends_the_same_message_random(
    make_chat: Any, no_backoff: None
) -> None:
    # The server may have stored the first: the same MsgRandom (and Random) lets it
    # drop the retry as a repeat rather than show the message twice.
    dropped = APIConnectionError("reset after sending", request_sent=True)
    transport = ScriptedTransport(dropped, SENT, dropped, GROUP_SENT)
    async with make_chat(transport) as chat:
        sent = await chat.send_c2c_message("@RBT#001", "user1", "hi")
        group_sent = await chat.send_group_message("@TGS#1", "hi")
    first, retry, group_first, group_retry = (r.body for r in transport.sent)
    assert first == retry
    assert sent.random == first["MsgRandom"]
    assert group_first == group_retry
    assert group_sent.random == group_first["Random"]
    # Each attempt still has a fresh query random (the signature's).
    assert transport.sent[0].params["random"] != transport.sent[1].params["random"]


@pytest.mark.parametrize(
    "answer",
    [
        {**OK, "MsgKey": "k"},  # no MsgTime
        {**OK, "MsgTime": "1669872112", "MsgKey": "k"},
        {**OK, "MsgTime": True, "MsgKey": "k"},
        {**OK, "MsgTime": 10**30, "MsgKey": "k"},
        {**OK, "MsgTime": -1, "MsgKey": "k"},
        {**OK, "MsgTime": 1, "MsgKey": 5},
    ],
)
async def test_an_answer_of_the_wrong_shape_is_a_bad_response(
    make_chat: Any, answer: dict[str, Any]
) -> None:
    async with make_chat(ScriptedTransport(answer)) as chat:
        with pytest.raises(BadResponseError, match="wrong type"):
            await chat.send_c2c_message("@RBT#001", "user1", "hi")


def test_a_message_call_is_data_and_its_key_makes_it_again() -> None:
    calls = [
        Call.send_c2c_message("@RBT#001", "user1", "hi", msg_lifetime=0),
        Call.send_c2c_message(None, "@RBT#001", [TextElem("a"), CustomElem("d")]),
        Call.send_group_message("@TGS#1", "hi", from_account="@RBT#001", online_only=True),
        Call.modify_c2c_message("@RBT#001", "user1", "k", body="x"),
        Call.modify_group_message("@TGS#1", 3, cloud_custom_data="c"),
    ]
    for call in calls:
        again = Call.from_key(call.key())
        assert again == call
        assert again.body == call.body  # the random included: the same request
    assert calls[0].key()[:3] == ["send_c2c_message", "@RBT#001", "user1"]


def test_a_call_draws_its_random_once() -> None:
    call = Call.send_group_message("@TGS#1", "hi")
    assert call.body.random == dict(call.arguments)["random"]  # type: ignore[attr-defined]
    assert Call.send_group_message("@TGS#1", "hi", random=5).body.random == 5  # type: ignore[attr-defined]


# -- pacing: the API's 200/s and each group's 40/s -----------------------------------------


def _recording_transport(
    sends: dict[str, list[float]], loop: asyncio.AbstractEventLoop
) -> ScriptedTransport:
    def answer(request: SentRequest) -> dict[str, Any]:
        group = request.body["GroupId"]
        sends.setdefault(group, []).append(loop.time())
        sends.setdefault("*", []).append(loop.time())
        return GROUP_SENT

    return ScriptedTransport(answer=answer)


def test_rate_for_a_group_is_its_documented_40_at_the_pace_fraction() -> None:
    limiter = RateLimiter(190)
    assert limiter.rate_for("group_messages/@TGS#1") == pytest.approx(38)
    assert limiter.rate_for("group_open_http_svc/send_group_msg") == pytest.approx(190)
    assert RateLimiter(400).rate_for("group_messages/g") == 40  # never above the documented


def test_one_group_gets_at_most_its_pace_while_the_api_serves_other_groups() -> None:
    async def main(loop: Any) -> dict[str, list[float]]:
        sends: dict[str, list[float]] = {}
        chat = TencentChat(
            SDKAPPID,
            SECRET_KEY,
            admin=ADMIN,
            base_url=BASE_URL,
            transport=_recording_transport(sends, loop),
        )
        async with chat:
            hot = [chat.send_group_message("hot", f"m{i}") for i in range(150)]
            # Other groups saturate the API, so the hot group's permits wait for it too.
            others = [
                chat.with_options(priority="bulk").send_group_message(f"g{i % 300}", "x")
                for i in range(900)
            ]
            await asyncio.gather(*hot, *others)
        return sends

    sends = run_virtual(main)
    assert len(sends["hot"]) == 150
    assert max_in_window(sends["hot"]) <= 39  # 38 paced, and one in flight at most
    assert max_in_window(sends["*"]) <= 190
    # The other groups are not held up by the hot one's turns: all 1,050 messages go
    # at about the API's pace.
    assert sends["*"][-1] - sends["*"][0] < 1050 / 190 + 1
    # Not throttled below the pace: 150 sends at 38/s take about 4 s, not much more.
    assert sends["hot"][-1] - sends["hot"][0] < 150 / 38 + 1.5


def test_a_groups_frequency_refusal_holds_off_that_group_not_the_api(no_backoff: None) -> None:
    async def main(loop: Any) -> tuple[float, float]:
        refused = [False]
        times: dict[str, float] = {}

        def answer(request: SentRequest) -> dict[str, Any]:
            group = request.body["GroupId"]
            if group == "busy" and not refused[0]:
                refused[0] = True
                return _error(10023)
            times[group] = loop.time()
            return GROUP_SENT

        chat = TencentChat(
            SDKAPPID,
            SECRET_KEY,
            admin=ADMIN,
            base_url=BASE_URL,
            transport=ScriptedTransport(answer=answer),
        )
        async with chat:
            start = loop.time()
            busy = asyncio.create_task(chat.send_group_message("busy", "x"))
            await asyncio.sleep(0.1)  # the refusal is in: the busy group is held off
            await chat.send_group_message("calm", "x")
            await busy
            return times["busy"] - start, times["calm"] - start

    busy_took, calm_took = run_virtual(main)
    assert busy_took >= 1.0  # the group's whole budget held off after its 10023
    assert calm_took < 0.11  # meanwhile the API was not: another group's message went


def test_idle_group_keys_are_dropped_so_the_limiter_stays_small() -> None:
    async def main(loop: Any) -> int:
        limiter = RateLimiter(190)
        for i in range(5000):
            await limiter.acquire(f"group_messages/g{i}")
            if i % 100 == 99:
                await asyncio.sleep(1.1)  # the earlier groups go idle
        return len(limiter._keys)

    assert run_virtual(main) < 1500


def test_a_busy_group_key_is_never_dropped() -> None:
    async def main(loop: Any) -> int:
        limiter = RateLimiter(190)
        for _ in range(38):
            await limiter.acquire("group_messages/busy")
        for i in range(3000):  # makes many keys: pruning runs meanwhile
            await limiter.acquire(f"group_messages/g{i}")
        started = loop.time()
        await limiter.acquire("group_messages/busy")  # its window still holds 38 starts
        return loop.time() - started > 0

    assert run_virtual(main)


def test_an_interactive_reply_to_a_group_goes_before_the_groups_waiting_bulk_messages() -> None:
    async def main(loop: Any) -> tuple[int, float]:
        order: list[str] = []

        def answer(request: SentRequest) -> dict[str, Any]:
            order.append(request.body["MsgBody"][0]["MsgContent"]["Text"])
            return GROUP_SENT

        chat = TencentChat(
            SDKAPPID,
            SECRET_KEY,
            admin=ADMIN,
            base_url=BASE_URL,
            transport=ScriptedTransport(answer=answer),
        )
        async with chat:
            bulk = chat.with_options(priority="bulk")
            announcements = [
                asyncio.create_task(bulk.send_group_message("g", f"news {i}")) for i in range(200)
            ]
            await asyncio.sleep(1.0)  # virtual: the group's first 38 or so have gone
            asked = loop.time()
            await chat.send_group_message("g", "the reply")
            waited = loop.time() - asked
            await asyncio.gather(*announcements)
        return order.index("the reply"), waited

    position, waited = run_virtual(main)
    assert position < 45  # not behind the 160 bulk messages still waiting
    assert waited < 0.1


async def test_max_wait_zero_sends_at_once_to_an_idle_group(make_chat: Any) -> None:
    transport = ScriptedTransport(GROUP_SENT)
    async with make_chat(transport, rate_limit=190) as chat:
        await chat.with_options(max_wait=0).send_group_message("@TGS#1", "hi")
    assert len(transport.sent) == 1


def test_message_numbers_never_repeat_and_keep_the_order_messages_are_made_in() -> None:
    # 12,000 messages (5 minutes of one group at 40/s): drawn at random, two would share
    # a Random 1.7% of the time, and the server would drop the second as a repeat.
    calls = [Call.send_group_message("@TGS#1", "x") for _ in range(12_000)]
    randoms = [call.body.random for call in calls]  # type: ignore[attr-defined]
    assert len(set(randoms)) == len(randoms)
    sequence = [Call.send_c2c_message("@RBT#1", "u", "x").body.msg_seq for _ in range(100)]  # type: ignore[attr-defined]
    assert sequence == sorted(sequence) or 0 in sequence  # increasing (but at a wrap)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX's")
def test_a_forked_worker_numbers_its_messages_apart_from_its_parent() -> None:
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()

    def number() -> None:
        child.send(Call.send_group_message("@TGS#1", "x").body.random)  # type: ignore[attr-defined]

    process = context.Process(target=number)
    process.start()
    from_child = parent.recv()
    process.join(10)
    from_parent = Call.send_group_message("@TGS#1", "x").body.random  # type: ignore[attr-defined]
    # Without a new start the child would have used the very number the parent uses next.
    assert abs(from_child - from_parent) > 1000


# -- each rule at its edges, each option of each call (mutation survivors) -----------------


async def test_every_group_option_goes_out_under_its_documented_name(make_chat: Any) -> None:
    transport = ScriptedTransport(GROUP_SENT)
    async with make_chat(transport) as chat:
        await chat.send_group_message(
            "@TGS#1",
            "hi",
            from_account="@RBT#001",
            random=0,
            online_only=True,
            msg_priority="Lowest",
            cloud_custom_data="cc",
            forbid_callbacks=["ForbidAfterSendMsgCallback"],
            send_control=["NoLastMsg"],
            offline_push={"PushFlag": 1},
        )
    body = transport.sent[0].body
    assert body == {
        "GroupId": "@TGS#1",
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}],
        "Random": 0,
        "From_Account": "@RBT#001",
        "MsgPriority": "Lowest",
        "OnlineOnlyFlag": 1,
        "ForbidCallbackControl": ["ForbidAfterSendMsgCallback"],
        "SendMsgControl": ["NoLastMsg"],
        "CloudCustomData": "cc",
        "OfflinePushInfo": {"PushFlag": 1},
    }
    assert type(body["OnlineOnlyFlag"]) is int  # the page's Integer, not a JSON true


@pytest.mark.parametrize("online_only", [False, None])
def test_a_message_for_everyone_carries_no_online_only_flag(online_only: Any) -> None:
    call = Call.send_group_message("@TGS#1", "hi", online_only=online_only)
    assert call.body.online_only is None  # type: ignore[attr-defined]
    assert "online_only" not in dict(call.arguments)
    # Made by hand, with the argument as given.
    made = Call(
        "send_group_message", (("group_id", "g"), ("body", "x"), ("online_only", online_only))
    )
    assert made.body.online_only is None  # type: ignore[attr-defined]
    flagged = Call("send_group_message", (("group_id", "g"), ("body", "x"), ("online_only", True)))
    assert flagged.body.online_only == 1  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="online_only must be True or False, got 2"):
        Call("send_group_message", (("group_id", "g"), ("body", "x"), ("online_only", 2)))


def test_a_call_names_only_the_options_given() -> None:
    call = Call.send_group_message("@TGS#1", "hi", random=7)
    assert call.key() == [
        "send_group_message",
        "@TGS#1",
        [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}],
        ["random", 7],
    ]
    assert Call.modify_c2c_message("@RBT#1", "u", "k", cloud_custom_data="c").key() == [
        "modify_c2c_message",
        "@RBT#1",
        "u",
        "k",
        ["cloud_custom_data", "c"],
    ]


async def test_modifications_carry_what_they_replace(make_chat: Any) -> None:
    transport = ScriptedTransport(OK)
    async with make_chat(transport) as chat:
        await chat.modify_c2c_message("@RBT#001", "user1", "k1", cloud_custom_data="cc")
        await chat.modify_group_message("@TGS#1", 0, body="new")
    assert transport.sent[0].body == {
        "From_Account": "@RBT#001",
        "To_Account": "user1",
        "MsgKey": "k1",
        "CloudCustomData": "cc",
    }
    assert transport.sent[1].body == {
        "GroupId": "@TGS#1",
        "MsgSeq": 0,
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "new"}}],
    }


@pytest.mark.parametrize("number", [0, 2**32 - 1])
def test_the_uint32_fields_take_their_whole_range(number: int) -> None:
    assert (
        Call.send_c2c_message("@RBT#1", "u", "x", random=number, msg_seq=number).body.random
        == number
    )  # type: ignore[attr-defined]
    assert Call.modify_group_message("@TGS#1", number, body="x").body.msg_seq == number  # type: ignore[attr-defined]


@pytest.mark.parametrize("number", [-1, 2**32, True, 1.0])
def test_a_group_message_number_outside_uint32_is_refused_by_name(number: Any) -> None:
    with pytest.raises(
        ValidationError, match=r"MsgSeq \(msg_seq\) must be an integer 0 to 4294967295"
    ):
        Call.modify_group_message("@TGS#1", number, body="x")


@pytest.mark.parametrize("seconds", [0, 253_402_300_799])
async def test_a_server_time_anywhere_a_datetime_holds_is_read(
    make_chat: Any, seconds: int
) -> None:
    async with make_chat(ScriptedTransport({**SENT, "MsgTime": seconds})) as chat:
        sent = await chat.send_c2c_message("@RBT#001", "user1", "hi")
    assert sent.msg_time == datetime.fromtimestamp(seconds, timezone.utc)


async def test_an_answer_time_past_the_year_9999_names_the_field(make_chat: Any) -> None:
    async with make_chat(ScriptedTransport({**SENT, "MsgTime": 253_402_300_800})) as chat:
        with pytest.raises(BadResponseError) as raised:
            await chat.send_c2c_message("@RBT#001", "user1", "hi")
    assert "msg_time 253402300800 is no time" in repr(raised.value.__cause__.exceptions)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"send_control": "NoUnread"},
            r"SendMsgControl \(send_control\) must be a list of words, not str",
        ),
        ({"send_control": 5}, r"SendMsgControl \(send_control\) must be a list of words, not int"),
        (
            {"send_control": ["NoUnread", "Loud"]},
            r"\(send_control\): 'Loud' is not one of NoLastMsg, NoUnread, WithMuteNotifications",
        ),
        (
            {"sync_other_machine": 0},
            r"SyncOtherMachine \(sync_other_machine\) must be 1 \(sync\) or 2",
        ),
        ({"sync_other_machine": 1.0}, r"SyncOtherMachine \(sync_other_machine\) must be 1"),
        (
            {"offline_push": ["PushFlag"]},
            r"OfflinePushInfo \(offline_push\) must be an object, not list",
        ),
        ({"cloud_custom_data": "x" * 12289}, "12 KB"),
    ],
)
def test_a_rule_broken_is_said_in_the_fields_words(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Call.send_c2c_message("@RBT#1", "u", "x", **options)


def test_a_sync_of_1_and_2_are_both_allowed() -> None:
    for value in (1, 2):
        assert (
            Call.send_c2c_message(
                "@RBT#1", "u", "x", sync_other_machine=value
            ).body.sync_other_machine
            == value
        )  # type: ignore[attr-defined]


def test_a_group_priority_outside_the_four_words_lists_them() -> None:
    with pytest.raises(
        ValidationError, match="must be one of High, Low, Lowest, Normal, got 'Urgent'"
    ):
        Call.send_group_message("@TGS#1", "x", msg_priority="Urgent")


def test_an_empty_sender_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match=r"From_Account \(from_account\) must not be empty"):
        Call.send_group_message("@TGS#1", "x", from_account="")


@pytest.mark.parametrize(
    "call",
    [
        lambda: Call.modify_c2c_message("@RBT#1", "u", "k", cloud_custom_data="x" * 12289),
        lambda: Call.modify_c2c_message("@RBT#1", "u", "k", body="x" * 12289),
        lambda: Call.modify_group_message("@TGS#1", 1, body="x" * 12289),
        lambda: Call.modify_group_message("@TGS#1", 1, cloud_custom_data="x" * 12289),
    ],
)
def test_a_modification_is_held_to_12_kb_too(call: Any) -> None:
    with pytest.raises(ValidationError, match="12 KB"):
        call()


def test_a_modification_of_nothing_says_what_to_give() -> None:
    with pytest.raises(
        ValidationError, match=r"^a modification replaces the body or the custom data: give one$"
    ):
        Call.modify_group_message("@TGS#1", 1)


def test_a_group_key_whose_window_still_binds_is_not_dropped_once_its_pacing_has_passed() -> None:
    # Paced starts leave the GCRA schedule behind within 1/38 s, while the window still
    # holds 38 starts of the last second: the key must not look idle then.
    async def main(loop: Any) -> float:
        limiter = RateLimiter(190)
        for _ in range(38):
            await limiter.acquire("group_messages/busy")
        await asyncio.sleep(0.03)
        for i in range(3000):
            await limiter.acquire(f"group_messages/g{i}")
        started = loop.time()
        await limiter.acquire("group_messages/busy")
        return loop.time() - started

    assert run_virtual(main) > 0


def test_cancelled_and_timed_out_waiters_leave_a_groups_turns_whole() -> None:
    async def main(loop: Any) -> tuple[int, int, int, int, float, str]:
        chat = TencentChat(
            SDKAPPID,
            SECRET_KEY,
            admin=ADMIN,
            base_url=BASE_URL,
            transport=ScriptedTransport(GROUP_SENT),
        )
        async with chat:
            tasks = [asyncio.create_task(chat.send_group_message("g", f"m{i}")) for i in range(80)]
            hurried = chat.with_options(max_wait=0.05)
            asked = loop.time()
            late = [asyncio.create_task(hurried.send_group_message("g", "late")) for _ in range(5)]
            refusals = await asyncio.gather(*late, return_exceptions=True)
            refused_after = loop.time() - asked
            await asyncio.sleep(0.5)
            for task in tasks[40:60]:  # waiting for the group's turn or its permit
                task.cancel()
            results = [*await asyncio.gather(*tasks, return_exceptions=True), *refusals]
            gate = chat._sender._gates["group_open_http_svc/send_group_msg"]
            turns_left = len(gate._turns._keys)
        sent = sum(1 for r in results if isinstance(r, SentGroupMessage))
        cancelled = sum(1 for r in results if isinstance(r, asyncio.CancelledError))
        timed_out = sum(1 for r in results if isinstance(r, QueueTimeoutError))
        message = str(refusals[0])
        return sent, cancelled, timed_out, turns_left, refused_after, message

    sent, cancelled, timed_out, turns_left, refused_after, message = run_virtual(main)
    assert cancelled == 20
    assert timed_out == 5
    # Refused when max_wait was up (in the group's turn behind 80), not after their turn.
    assert refused_after <= 0.05 + 1e-6
    assert message == (
        "group_open_http_svc/send_group_msg was not sent: earlier calls of"
        " group_messages/g still wait their turn (max_wait=0.05s)"
    )
    assert sent == 60  # every other one went, in its turn; the five hurried ones timed out
    assert turns_left == 0  # no turn held or wanted is left behind


def test_a_group_permit_that_would_come_after_max_wait_is_refused_at_once() -> None:
    async def main(loop: Any) -> tuple[float, str]:
        chat = TencentChat(
            SDKAPPID,
            SECRET_KEY,
            admin=ADMIN,
            base_url=BASE_URL,
            transport=ScriptedTransport(GROUP_SENT),
        )
        async with chat:
            # 38 in the group's sliding second: the next may start only when the first
            # is a second old, some 25 ms after the 38th.
            await asyncio.gather(*(chat.send_group_message("g", "x") for _ in range(38)))
            asked = loop.time()
            try:
                await chat.with_options(max_wait=0.01).send_group_message("g", "late")
            except QueueTimeoutError as refused:
                return loop.time() - asked, str(refused)
            return loop.time() - asked, "sent"

    waited, outcome = run_virtual(main)
    assert waited == 0  # told at once, not after waiting
    assert outcome.startswith("group_open_http_svc/send_group_msg was not sent: the rate permit")
    assert "group_messages/g" in outcome
