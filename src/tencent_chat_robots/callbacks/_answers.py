"""What a callback is answered: the JSON envelope Tencent Chat reads, and the result of
one callback as the receiver records it (status, body, counted outcome)."""

from __future__ import annotations

import asyncio
import json

import attrs

__all__ = ["OK", "Answer", "Result", "envelope"]

Answer = tuple[int, dict[str, str], bytes]
"""What :meth:`RobotCallbacks.dispatch` returns: HTTP status, headers, body."""


def envelope(code: int, info: str, **extra: str) -> bytes:
    """``{"ActionStatus", "ErrorCode", "ErrorInfo", ...extra}`` as compact JSON."""
    status = "OK" if code == 0 else "FAIL"
    fields = {"ActionStatus": status, "ErrorCode": code, "ErrorInfo": info, **extra}
    return json.dumps(fields, separators=(",", ":")).encode()


OK = envelope(0, "")


@attrs.define(slots=True)
class Result:
    """One callback's answer and its counted outcome (and refusal reason).

    ``finished``: awaited by :meth:`RobotCallbacks.feed` for the handler it started or
    queued (``None`` when there is none)."""

    status: int
    body: bytes
    outcome: str
    reason: str | None = None
    finished: asyncio.Future[None] | None = None

    def answer(self) -> Answer:
        return self.status, {"content-type": "application/json"}, self.body
