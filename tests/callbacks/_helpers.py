"""What the callback tests share: the documented example, bodies as Tencent sends them,
a clock the tests move by hand, and handlers that record or block."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from typing import Any

SDKAPPID = 1400000000
TOKEN = "callback-token-0123456789abcdef"  # long: redaction finds it anywhere
NOW = 1_669_872_112.0

C2C = "Bot.OnC2CMessage"
GROUP = "Bot.OnGroupMessage"
SIGNAL = "Chatbot.OnC2CSignalMessage"


class Clock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sign(token: str, request_time: str) -> str:
    return hashlib.sha256((token + request_time).encode()).hexdigest()


def query(
    command: str | None = C2C,
    *,
    token: str | None = TOKEN,
    request_time: float = NOW,
    **extra: str,
) -> dict[str, str]:
    """A query string as Tencent Chat sends it, signed with ``token``."""
    params = {"SdkAppid": str(SDKAPPID), "contenttype": "json", "ClientIP": "203.0.113.9"}
    params["OptPlatform"] = "Android"
    if command is not None:
        params["CallbackCommand"] = command
    if token is not None:
        params["RequestTime"] = str(int(request_time))
        params["Sign"] = sign(token, params["RequestTime"])
    params.update(extra)
    return params


def c2c(key: str = "key-1", text: str = "hi", **fields: Any) -> dict[str, Any]:
    """A Bot.OnC2CMessage body of the docs' shape."""
    body: dict[str, Any] = {
        "CallbackCommand": C2C,
        "From_Account": "user-1",
        "To_Account": "@RBT#001",
        "MsgSeq": 123,
        "MsgRandom": 2_000_000_000,
        "MsgTime": 1_669_872_110,
        "MsgKey": key,
        "MsgId": "144115233406641817-1669872110-2000000000",
        "OnlineOnlyFlag": 0,
        "SendMsgResult": 0,
        "ErrorInfo": "send msg succeed",
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}],
        "CloudCustomData": "",
        "EventTime": 1_669_872_110_123,
    }
    body.update(fields)
    return body


def group(seq: int = 7, text: str = "@@RBT#001 hello", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "CallbackCommand": GROUP,
        "GroupId": "@TGS#2J4SZEAEL",
        "Type": "Public",
        "From_Account": "user-1",
        "Operator_Account": "user-1",
        "Random": 2_946_777_063,
        "MsgSeq": seq,
        "MsgTime": 1_669_872_110,
        "OnlineOnlyFlag": 0,
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}],
        "AtRobots_Account": ["@RBT#001"],
        "CloudCustomData": "",
        "EventTime": 1_669_872_110_456,
    }
    body.update(fields)
    return body


def signal(key: str = "sig-1", data: str = '{"ask":"weather"}', **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "CallbackCommand": SIGNAL,
        "From_Account": "user-1",
        "To_Account": "@RBT#001",
        "MsgSeq": 9,
        "MsgRandom": 42,
        "MsgKey": key,
        "EventTime": 1_669_872_110_789,
        "Data": data,
    }
    body.update(fields)
    return body


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body).encode()


def answer(result: tuple[int, dict[str, str], bytes]) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a dispatch's answer."""
    status, headers, body = result
    assert headers["content-type"] == "application/json"
    return status, json.loads(body)


OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}


class Recorder:
    """An async handler recording its events; ``gate`` (if set) holds each call until
    it is set, and ``started`` is set once a call has begun."""

    def __init__(self, *, gate: asyncio.Event | None = None, result: Any = None) -> None:
        self.events: list[Any] = []
        self.gate = gate
        self.result = result
        self.started = asyncio.Event()
        self.cancelled = 0

    async def __call__(self, event: Any) -> Any:
        self.events.append(event)
        self.started.set()
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return self.result


async def until(condition: Any) -> None:
    """Let the loop run until ``condition()`` holds (a few turns, never a timed sleep)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")
