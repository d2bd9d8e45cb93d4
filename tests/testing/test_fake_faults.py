"""Fault injection: scripted codes, random internal errors, 502s, latency, dropped connections."""

from __future__ import annotations

import time

import httpx
import pytest

from tencent_chat_robots.testing import ConnectionDropped, FakeTencentChat

CREATE = "openim_robot_http_svc/create_robot"
GET_ALL = "openim_robot_http_svc/get_all_robots"
ROOM_ADD = "room_engine_http_srv/add_robot"
GROUP_ADD = "group_open_avchatroom_http_svc/add_robots"


async def test_fail_next_answers_the_code_then_recovers(api) -> None:
    api.fake.fail_next(CREATE, 10002, times=2)
    api.fake.fail_next(CREATE, 40006)
    assert api.fake.pending_faults(CREATE) == 3
    codes = [await api.code(CREATE, {"UserID": "@RBT#1"}) for _ in range(4)]
    assert codes == [10002, 10002, 40006, 0]
    assert api.fake.pending_faults(CREATE) == 0
    assert api.fake.robots == ["@RBT#1"]


async def test_fail_next_is_per_endpoint(api) -> None:
    api.fake.fail_next(CREATE, 10002)
    assert await api.code(GET_ALL) == 0
    assert await api.code(CREATE, {"UserID": "@RBT#1"}) == 10002


async def test_failed_call_changes_nothing(api) -> None:
    api.fake.fail_next(CREATE, 10002)
    assert await api.code(CREATE, {"UserID": "@RBT#1"}) == 10002
    assert api.fake.robots == []


async def test_fail_next_waits_for_an_authenticated_call(api) -> None:
    api.fake.fail_next(GET_ALL, 10008)
    assert await api.code(GET_ALL, usersig="garbage") == 70003
    assert await api.code(GET_ALL, raw=b"not json") == 10008  # precedes the body check
    assert await api.code(GET_ALL) == 0


async def test_injected_room_error_has_request_id(api) -> None:
    api.fake.fail_next(ROOM_ADD, 100006)
    envelope = await api.call(ROOM_ADD, {"RoomId": "r", "Member_Account": "@RBT#1"})
    assert envelope["ErrorCode"] == 100006
    assert envelope["RequestId"].startswith("Id-")


@pytest.mark.parametrize(
    ("endpoint", "code"),
    [(CREATE, 10002), (GET_ALL, 10002), (ROOM_ADD, 100001), (GROUP_ADD, 10002)],
)
async def test_error_rate_one_always_fails(api, endpoint: str, code: int) -> None:
    api.fake.error_rate = 1.0
    assert [await api.code(endpoint, {}) for _ in range(3)] == [code] * 3
    api.fake.error_rate = 0.0
    assert await api.code(GET_ALL) == 0


async def test_error_rate_is_seeded(clock) -> None:
    sequences = []
    for _ in range(2):
        fake = FakeTencentChat(clock=clock, error_rate=0.5, seed=42)
        transport = httpx.ASGITransport(app=fake.app)
        query = (
            f"sdkappid={fake.sdkappid}&identifier={fake.admin}&usersig={fake.usersig()}"
            "&random=1&contenttype=json"
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://fake") as http:
            for _ in range(40):
                await http.post(f"/v4/{GET_ALL}?{query}", content=b"{}")
        sequences.append([c.error_code for c in fake.calls])
    assert sequences[0] == sequences[1]
    assert set(sequences[0]) == {0, 10002}
    fake.seed(42)
    assert fake.error_rate == 0.5


async def test_error_rate_does_not_hit_unauthenticated_calls(api) -> None:
    api.fake.error_rate = 1.0
    assert await api.code(GET_ALL, usersig=None) == 70002


async def test_bad_gateway(api) -> None:
    api.fake.bad_gateway_next(CREATE, times=2)
    for _ in range(2):
        response = await api.post(CREATE, {"UserID": "@RBT#1"})
        assert response.status_code == 502
        assert response.headers["content-type"] == "text/html"
        assert b"502 Bad Gateway" in response.content
    assert api.fake.robots == []
    assert await api.code(CREATE, {"UserID": "@RBT#1"}) == 0
    calls = api.fake.calls
    assert [(c.error_code, c.http_status, c.fault) for c in calls] == [
        (None, 502, "bad_gateway"),
        (None, 502, "bad_gateway"),
        (0, 200, None),
    ]


async def test_bad_gateway_precedes_auth_and_rate_limit(api) -> None:
    api.fake.bad_gateway_next(GET_ALL)
    assert (await api.post(GET_ALL, usersig=None)).status_code == 502


async def test_latency_delays_every_answer(api) -> None:
    api.fake.latency = 0.2
    started = time.perf_counter()
    assert await api.code(GET_ALL) == 0
    assert time.perf_counter() - started >= 0.2
    api.fake.latency = 0.0
    started = time.perf_counter()
    assert await api.code(GET_ALL) == 0
    assert time.perf_counter() - started < 0.2


async def test_dropped_connection_before_processing(api) -> None:
    api.fake.drop_next(CREATE)
    with pytest.raises(ConnectionDropped):
        await api.post(CREATE, {"UserID": "@RBT#1"})
    assert api.fake.robots == []
    assert await api.code(CREATE, {"UserID": "@RBT#2"}) == 0
    first = api.fake.calls[0]
    assert (first.endpoint, first.error_code, first.http_status, first.fault) == (
        CREATE,
        None,
        None,
        "dropped",
    )
    assert first.body == {"UserID": "@RBT#1"}


async def test_dropped_connection_after_processing(api) -> None:
    api.fake.drop_next(CREATE, times=2, after_processing=True)
    with pytest.raises(ConnectionDropped):
        await api.post(CREATE, {"UserID": "@RBT#1"})
    assert api.fake.robots == ["@RBT#1"]  # it happened; the client cannot know
    with pytest.raises(ConnectionDropped):
        await api.post(CREATE, {"UserID": "bad"})
    assert [(c.error_code, c.http_status, c.fault) for c in api.fake.calls] == [
        (0, None, "dropped"),
        (10004, None, "dropped"),
    ]


async def test_drop_comes_before_bad_gateway(api) -> None:
    api.fake.bad_gateway_next(GET_ALL)
    api.fake.drop_next(GET_ALL)
    with pytest.raises(ConnectionDropped):
        await api.post(GET_ALL)
    assert (await api.post(GET_ALL)).status_code == 502
    assert await api.code(GET_ALL) == 0


async def test_faulted_calls_are_arrivals(api) -> None:
    api.fake.drop_next(GET_ALL)
    api.fake.bad_gateway_next(GET_ALL)
    with pytest.raises(ConnectionDropped):
        await api.post(GET_ALL)
    await api.post(GET_ALL)
    assert len(api.fake.arrivals(GET_ALL)) == 2


async def test_clear_faults(api) -> None:
    api.fake.fail_next(GET_ALL, 10002)
    api.fake.bad_gateway_next(GET_ALL)
    api.fake.drop_next(GET_ALL)
    api.fake.latency = 1.0
    api.fake.latency_spread = 1.0
    api.fake.error_rate = 1.0
    api.fake.clear_faults()
    assert api.fake.pending_faults(GET_ALL) == 0
    assert (api.fake.latency, api.fake.latency_spread, api.fake.error_rate) == (0, 0, 0)
    assert await api.code(GET_ALL) == 0


def test_fault_arguments_are_checked(fake) -> None:
    with pytest.raises(ValueError, match="unknown endpoint"):
        fake.fail_next("openim_robot_http_svc/create_robots", 10002)
    with pytest.raises(ValueError, match="times"):
        fake.fail_next(CREATE, 10002, times=0)
    with pytest.raises(ValueError, match="non-zero"):
        fake.fail_next(CREATE, 0)
    with pytest.raises(ValueError, match="times"):
        fake.drop_next(CREATE, times=0)
    with pytest.raises(ValueError, match="times"):
        fake.bad_gateway_next(CREATE, times=-1)
    with pytest.raises(ValueError, match="latency"):
        fake.latency = -1
    with pytest.raises(ValueError, match="latency_spread"):
        fake.latency_spread = -0.1
    with pytest.raises(ValueError, match="error_rate"):
        fake.error_rate = 1.5
    with pytest.raises(ValueError, match="error_rate"):
        FakeTencentChat(error_rate=-0.1)
