"""The request loop as it runs where opentelemetry-api is not installed (no telemetry).

The test environment has the API; these tests take it away from the client, so the
paths that never build a span are checked too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

import tencent_chat_robots._telemetry as telemetry_module
from tencent_chat_robots import AttemptRecord, Endpoint, TencentChat

from .conftest import ScriptedTransport, fail, ok


@pytest.fixture(autouse=True)
def without_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry_module, "otel_context", None)


class KeyRecordingLimiter:
    """A user's limiter with only ``acquire(key)`` (no ``pause``)."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def acquire(self, key: str) -> None:
        self.keys.append(key)


async def test_each_attempt_asks_the_limiter_for_its_own_endpoint(
    make_chat: Callable[..., TencentChat], no_backoff: None
) -> None:
    limiter = KeyRecordingLimiter()
    records: list[AttemptRecord] = []
    transport = ScriptedTransport(fail(60007, "too fast"), ok(), ok())
    async with make_chat(transport, limiter=limiter, on_attempt=records.append) as chat:
        assert chat._sender.telemetry is None
        await chat.delete_robot("@RBT#1")  # refused for frequency, then retried
        await chat.get_all_robots()
    assert limiter.keys == [Endpoint.DELETE_ROBOT, Endpoint.DELETE_ROBOT, Endpoint.GET_ALL_ROBOTS]
    assert [(r.endpoint, r.attempt) for r in records] == [
        (Endpoint.DELETE_ROBOT, 1),
        (Endpoint.DELETE_ROBOT, 2),
        (Endpoint.GET_ALL_ROBOTS, 1),
    ]


async def test_an_answer_with_a_request_id_of_the_wrong_type_reports_none(
    make_chat: Callable[..., TencentChat],
) -> None:
    records: list[AttemptRecord] = []
    async with make_chat(ScriptedTransport(ok(RequestId=5)), on_attempt=records.append) as chat:
        with pytest.raises(Exception):  # noqa: B017, PT011 - a BadResponseError; not the point
            await chat.delete_robot("@RBT#1")
    assert [record.request_id for record in records] == [None]


async def test_debug_log_names_each_attempt_its_random_and_outcome(
    make_chat: Callable[..., TencentChat], caplog: pytest.LogCaptureFixture, no_backoff: None
) -> None:
    caplog.set_level(logging.DEBUG, logger="tencent_chat_robots")
    transport = ScriptedTransport(fail(70500, "busy"), ok())
    async with make_chat(transport) as chat:
        await chat.delete_robot("@RBT#1")
    first, second = (int(request.params["random"]) for request in transport.sent)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert debug == [
        f"openim_robot_http_svc/delete_robot attempt 1 (random={first}): InternalServerError:"
        " error 70500 from openim_robot_http_svc/delete_robot: busy",
        f"openim_robot_http_svc/delete_robot attempt 2 (random={second}): OK",
    ]
