"""The fake's Python face: identity, calls log, state inspection, client() wiring."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tencent_chat_robots import Endpoint
from tencent_chat_robots._usersig import verify_usersig
from tencent_chat_robots.testing import (
    ENDPOINTS,
    FAKE_BASE_URL,
    ASGIAppTransport,
    Call,
    FakeTencentChat,
    _state,
)

CREATE = "openim_robot_http_svc/create_robot"
GET_ALL = "openim_robot_http_svc/get_all_robots"


def test_defaults() -> None:
    fake = FakeTencentChat()
    assert (fake.sdkappid, fake.secret_key, fake.admin) == (
        1400000000,
        "fake-secret-key",
        "administrator",
    )
    # Each endpoint's documented rate: 200/s on the robot pages, 100/s for live rooms.
    assert fake.rate_limit == {
        "openim_robot_http_svc/create_robot": 200,
        "openim_robot_http_svc/get_all_robots": 200,
        "openim_robot_http_svc/delete_robot": 200,
        "room_engine_http_srv/add_robot": 200,
        "room_engine_http_srv/delete_robot": 200,
        "group_open_avchatroom_http_svc/add_robots": 200,
        "group_open_avchatroom_http_svc/del_robots": 200,
        "live_engine_http_srv/add_robot": 100,
        "live_engine_http_srv/del_robot": 100,
        "live_engine_http_srv/get_robot": 100,
        "openim/sendmsg": 200,
        "group_open_http_svc/send_group_msg": 200,
        "openim/modify_c2c_msg": 200,
        "openim/modify_group_msg": 200,
        "openim_robot_http_svc/send_stream_msg": 200,
    }
    with pytest.raises(TypeError):  # a view: the limits are set at construction
        fake.rate_limit["live_engine_http_srv/add_robot"] = 1  # type: ignore[index]
    assert (fake.latency, fake.latency_spread, fake.error_rate) == (0.0, 0.0, 0.0)
    assert fake.robots == []
    assert fake.calls == []
    assert callable(fake.app)


def test_usersig_is_valid_for_the_app() -> None:
    fake = FakeTencentChat(sdkappid=1400000007, secret_key="s", admin="root")
    verify_usersig(fake.usersig(), sdkappid=1400000007, secret_key="s", identifier="root")
    verify_usersig(fake.usersig("u1"), sdkappid=1400000007, secret_key="s", identifier="u1")


async def test_calls_log_every_request_in_order(api, clock) -> None:
    await api.call(CREATE, {"UserID": "@RBT#1"})
    clock.advance(0.5)
    await api.call(GET_ALL, raw=b"junk")
    await api.call(GET_ALL, path="/v4/nope/nope")
    assert api.fake.calls == [
        Call(CREATE, 1000.0, {"UserID": "@RBT#1"}, 0),
        Call(GET_ALL, 1000.5, b"junk", 60003),
        Call("nope/nope", 1000.5, {}, 60002),
    ]
    # A snapshot: mutating it does not touch the fake.
    api.fake.calls.clear()
    assert len(api.fake.calls) == 3
    api.fake.reset_calls()
    assert api.fake.calls == []
    assert api.fake.robots == ["@RBT#1"]  # state survives a reset of the log


async def test_lifespan_is_acknowledged(fake) -> None:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await fake.app({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


def _tencent_chat_available() -> bool:
    try:
        return hasattr(importlib.import_module("tencent_chat_robots"), "TencentChat")
    except ImportError:
        return False


@pytest.mark.skipif(not _tencent_chat_available(), reason="TencentChat not written yet")
async def test_client_is_wired_to_the_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    import tencent_chat_robots

    captured: dict[str, Any] = {}

    class Spy:
        def __init__(self, **kwargs: Any) -> None:
            captured.update(kwargs)

    monkeypatch.setattr(tencent_chat_robots, "TencentChat", Spy)
    fake = FakeTencentChat(sdkappid=1400000009, secret_key="k", admin="root")
    fake.client(max_retries=0)
    transport = captured.pop("transport")
    assert isinstance(transport, ASGIAppTransport)
    assert transport.app is fake.app
    assert captured == {
        "sdkappid": 1400000009,
        "secret_key": "k",
        "admin": "root",
        "base_url": FAKE_BASE_URL,
        "max_retries": 0,
    }


def test_state_can_be_arranged_without_rest_calls() -> None:
    fake = FakeTencentChat()
    fake.create_room("room-1")
    fake.create_live_group("@TGS#g")
    fake.create_live_room("live-1")
    fake.create_robot("@RBT#1", Nick="Jarvis")
    fake.add_room_member("room-1", "@RBT#1")
    fake.add_live_group_members("@TGS#g", ["@RBT#1"])
    fake.add_live_room_robots("live-1", ["@RBT#1"])
    assert fake.robots == ["@RBT#1"]
    assert fake.robot_profile("@RBT#1") == {"Nick": "Jarvis"}
    assert fake.room_members("room-1") == ["@RBT#1"]
    assert fake.live_group_members("@TGS#g") == ["@RBT#1"]
    assert fake.live_room_robots("live-1") == ["@RBT#1"]
    assert fake.calls == []


def test_arranging_follows_the_documented_rules() -> None:
    fake = FakeTencentChat(max_robots=1)
    fake.create_robot("@RBT#1")
    with pytest.raises(ValueError, match="10008"):
        fake.create_robot("@RBT#2")
    with pytest.raises(ValueError, match="10004"):
        fake.create_robot("robot")
    with pytest.raises(ValueError, match="100004"):
        fake.add_room_member("no-room", "@RBT#1")
    with pytest.raises(ValueError, match="100004"):
        fake.add_live_room_robots("no-room", ["@RBT#1"])


async def test_history_can_be_bounded_for_a_long_running_fake() -> None:
    fake = FakeTencentChat(keep_history=5)
    async with fake.client(rate_limit=None) as chat:
        for _ in range(12):
            await chat.get_all_robots()
    assert len(fake.calls) == 5
    assert len(fake.arrivals("openim_robot_http_svc/get_all_robots")) == 5


async def test_the_fake_serves_every_row_of_the_sdk_endpoint_table(api) -> None:
    assert ENDPOINTS == Endpoint.ALL
    assert set(api.fake.rate_limit) == set(Endpoint.ALL)
    for endpoint in Endpoint.ALL:
        assert await api.code(endpoint, {}) != 60002  # a route, with rules of its own


def test_a_table_row_without_rules_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_state, "ENDPOINTS", (*Endpoint.ALL, "new_svc/new_command"))
    with pytest.raises(RuntimeError, match="no rules for new_svc/new_command"):
        FakeTencentChat()
