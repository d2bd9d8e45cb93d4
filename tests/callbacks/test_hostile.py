"""Hostile input: a 4xx with a counted reason, no handler called, and the receiver serves on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tencent_chat_robots.callbacks import RobotCallbacks

from ._helpers import C2C, OK, SDKAPPID, SIGNAL, TOKEN, Clock, Recorder, answer, c2c, encode, query


def _bot() -> tuple[RobotCallbacks, Recorder]:
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=Clock())
    handler = Recorder(result="")
    for register in (
        bot.on_c2c_message,
        bot.on_group_mention,
        bot.on_signal_message,
        bot.on_unknown,
    ):
        register(handler)  # type: ignore[arg-type]
    return bot, handler


VALID = encode(c2c())

HOSTILE: list[tuple[str, dict[str, str], bytes, int, str]] = [
    ("empty", query(), b"", 400, "body"),
    ("not JSON", query(), b"hello", 400, "body"),
    ("truncated JSON", query(), VALID[:-1], 400, "body"),
    ("an array", query(), b"[1, 2]", 400, "body"),
    ("a string", query(), b'"Bot.OnC2CMessage"', 400, "body"),
    ("null", query(), b"null", 400, "body"),
    ("NaN", query(), VALID.replace(b'"MsgSeq": 123', b'"MsgSeq": NaN'), 400, "body"),
    ("Infinity", query(), b'{"a": Infinity}', 400, "body"),
    ("5000 digits", query(), VALID.replace(b"123", b"9" * 5000, 1), 400, "body"),
    ("deep nesting", query(), b"[" * 100_000, 400, "body"),
    ("deep object", query(), b'{"a":' * 50 + b"1" + b"}" * 50, 400, "body"),
    (
        "deep within",
        query(),
        encode(c2c(CloudCustomData="x", Extra=json.loads("[" * 40 + "]" * 40))),
        400,
        "body",
    ),
    ("invalid UTF-8", query(), VALID.replace(b'"hi"', b'"\xff\xfe"'), 400, "body"),
    ("a UTF-8 BOM", query(), b"\xef\xbb\xbf" + VALID, 400, "body"),
    ("UTF-16", query(), json.dumps(c2c()).encode("utf-16"), 400, "body"),
    ("lone surrogate in text", query(), VALID.replace(b'"hi"', b'"\\ud800"'), 400, "body"),
    ("lone surrogate in a key", query(), VALID.replace(b'"MsgId"', b'"\\udfff"'), 400, "body"),
    ("lone surrogate elsewhere", query(), encode(c2c(Extra=["\ud800"])), 400, "body"),
    ("wrong type", query(), encode(c2c(From_Account=["user-1"])), 400, "event"),
    ("command mismatch", query(SIGNAL), VALID, 400, "command"),
    ("command not a string", query(None), encode(c2c(CallbackCommand=1)), 400, "command"),
    (
        "no command",
        query(None),
        encode({k: v for k, v in c2c().items() if k != "CallbackCommand"}),
        400,
        "command",
    ),
    ("over max_body", query(), b" " * (1024 * 1024) + VALID, 413, "too_large"),
    ("unsigned", query(token=None), VALID, 401, "sign"),
]


@pytest.mark.parametrize(
    ("params", "body", "status", "reason"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
async def test_hostile_input_gets_a_4xx_and_no_handler_call(
    params: dict[str, str], body: bytes, status: int, reason: str
) -> None:
    bot, handler = _bot()
    got, answered = answer(await bot.dispatch(params, body))
    assert got == status
    assert answered["ActionStatus"] == "FAIL"
    assert bot.stats[f"refused:{reason}"] == 1
    await bot.join()
    assert handler.events == []
    # The receiver still answers valid callbacks.
    assert answer(await bot.dispatch(query(), VALID)) == (200, OK)
    await bot.join()
    assert len(handler.events) == 1


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = st.sampled_from(
    [
        "CallbackCommand",
        "From_Account",
        "To_Account",
        "MsgKey",
        "MsgSeq",
        "MsgBody",
        "MsgTime",
        "EventTime",
        "GroupId",
        "AtRobots_Account",
        "Random",
        "Data",
        "OnlineOnlyFlag",
    ]
)
_COMMANDS = st.sampled_from([C2C, SIGNAL, "Bot.OnGroupMessage", "Other.Thing", ""])


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return json.dumps(draw(_JSON)).encode()
    body: dict[str, Any] = c2c(draw(st.text(min_size=1, max_size=8)))
    if draw(st.booleans()):
        body["CallbackCommand"] = draw(_COMMANDS)
    for _ in range(draw(st.integers(1, 3))):
        field = draw(_FIELDS)
        if draw(st.booleans()):
            body[field] = draw(_JSON)
        else:
            body.pop(field, None)
    return json.dumps(body).encode()


@st.composite
def _queries(draw: st.DrawFn) -> dict[str, str]:
    if draw(st.booleans()):
        return draw(st.dictionaries(st.text(max_size=12), st.text(max_size=70), max_size=6))
    params = query(draw(st.one_of(st.none(), _COMMANDS)))
    if draw(st.booleans()):
        params[draw(st.sampled_from(sorted(params)))] = draw(st.text(max_size=70))
    return params


@settings(
    max_examples=300,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(params=_queries(), body=_bodies())
async def test_any_body_and_query_get_no_5xx_and_a_handler_only_for_a_valid_event(
    params: dict[str, str], body: bytes
) -> None:
    bot, handler = _bot()
    status, answered = answer(await bot.dispatch(params, body))
    assert status in (200, 400, 401, 403)
    await bot.join()
    if status != 200:
        assert handler.events == []
        assert answered["ErrorCode"] == 1
        return
    assert bot.stats["refused"] == 0
    for event in handler.events:
        # What was handled is exactly the body sent, under a verified query.
        assert event.raw == json.loads(body)
        assert params["SdkAppid"] == str(SDKAPPID)
