"""The fake's own read-only routes, ``GET /_fake/state`` and ``GET /_fake/calls``.

For people testing from other languages: they show the state and the recent calls, and
are never arrivals (no rate limit, no record, no scripted fault, no latency), while
every Tencent path keeps answering as the vendor documents.
"""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

from tencent_chat_robots import Endpoint
from tencent_chat_robots.testing import FakeTencentChat

CREATE = Endpoint.CREATE_ROBOT
DELETE = Endpoint.DELETE_ROBOT
GET_ALL = Endpoint.GET_ALL_ROBOTS
ROOM_ADD = Endpoint.ROOM_ADD_ROBOT
GROUP_ADD = Endpoint.LIVE_GROUP_ADD_ROBOTS
LIVE_ROOM_ADD = Endpoint.LIVE_ROOM_ADD_ROBOT


async def test_state_shows_what_the_api_calls_made(api) -> None:
    fake = api.fake
    fake.create_room("room-1")
    fake.create_live_group("@TGS#live")
    fake.create_live_room("live-1")
    body = {"UserID": "@RBT#1", "Nick": "Jarvis", "FaceUrl": "https://x/1.png"}
    assert await api.code(CREATE, body) == 0
    await api.create_robots("@RBT#2", "@RBT#3")
    assert await api.code(DELETE, {"Robot_Account": "@RBT#3"}) == 0
    assert await api.code(ROOM_ADD, {"RoomId": "room-1", "Member_Account": "@RBT#2"}) == 0
    assert await api.code(ROOM_ADD, {"RoomId": "room-1", "Member_Account": "@RBT#1"}) == 0
    group_body = {"GroupId": "@TGS#live", "Member_Account": ["@RBT#1"]}
    assert await api.code(GROUP_ADD, group_body) == 0
    live_body = {"RoomId": "live-1", "RobotList_Account": ["@RBT#2"]}
    assert await api.code(LIVE_ROOM_ADD, live_body) == 0

    response = await api.http.get("/_fake/state")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "robots": [
            {"user_id": "@RBT#1", "profile": {"Nick": "Jarvis", "FaceUrl": "https://x/1.png"}},
            {"user_id": "@RBT#2", "profile": {}},
        ],
        "deleted_robots": ["@RBT#3"],
        "rooms": {"room-1": ["@RBT#2", "@RBT#1"]},
        "live_groups": {"@TGS#live": ["@RBT#1"]},
        "live_rooms": {"live-1": ["@RBT#2"]},
    }
    assert response.json() == fake.snapshot()


async def test_snapshot_is_a_copy(fake: FakeTencentChat) -> None:
    fake.create_room("room-1")
    fake.create_robot("@RBT#1")
    fake.add_room_member("room-1", "@RBT#1")
    snapshot = fake.snapshot()
    snapshot["rooms"]["room-1"].clear()
    snapshot["robots"][0]["profile"]["Nick"] = "changed"
    assert fake.room_members("room-1") == ["@RBT#1"]
    assert fake.robot_profile("@RBT#1") == {}


@pytest.mark.parametrize("fake_options", [{"rate_limit": 2}])
async def test_inspection_is_never_an_arrival(api, fake: FakeTencentChat) -> None:
    fake.drop_next(GET_ALL)
    fake.fail_next(CREATE, 10002)
    for _ in range(5):  # far past the limit of 2 a second, were they counted
        assert (await api.http.get("/_fake/state")).status_code == 200
        assert (await api.http.get("/_fake/calls")).status_code == 200
    assert (await api.http.get("/_fake/nope")).status_code == 404
    assert (await api.http.post("/_fake/state")).status_code == 405

    assert fake.calls == []
    assert fake.arrivals(GET_ALL) == fake.arrivals(CREATE) == []
    assert fake.pending_faults(GET_ALL) == fake.pending_faults(CREATE) == 1
    # The limit is untouched: two calls in this second pass, the third is refused.
    fake.clear_faults()
    assert await api.code(GET_ALL) == 0
    assert await api.code(GET_ALL) == 0
    assert await api.code(GET_ALL) == 60007
    # Tencent's paths answer as documented: near misses of the prefix are not its routes.
    assert await api.code(CREATE, path="/_fakes/state") == 60002
    assert await api.code(CREATE, path="/v4/_fake/state") == 60002
    assert len(fake.calls) == 5


async def test_inspection_takes_no_injected_latency(api, fake: FakeTencentChat) -> None:
    fake.latency = 3600.0  # every Tencent path would wait an hour before its answer
    with anyio.fail_after(30):  # (asyncio.timeout is 3.11's)
        assert (await api.http.get("/_fake/state")).status_code == 200
        assert (await api.http.get("/_fake/calls")).status_code == 200


async def test_calls_lists_the_latest_without_the_usersig(api, clock) -> None:
    await api.create_robots("@RBT#1")
    clock.advance(0.25)
    await api.call(GET_ALL, raw=b"not json")
    clock.advance(0.25)
    await api.call(GET_ALL, path="/v4/nope/nope")
    await api.call(GET_ALL, usersig="forged")

    response = await api.http.get("/_fake/calls")

    assert response.status_code == 200
    assert api.usersig not in response.text
    assert response.json() == {
        "now": 1000.5,
        "kept": 4,
        "calls": [
            {
                "endpoint": CREATE,
                "time": 1000.0,
                "error_code": 0,
                "http_status": 200,
                "fault": None,
                "body": {"UserID": "@RBT#1"},
            },
            {
                "endpoint": GET_ALL,
                "time": 1000.25,
                "error_code": 60003,
                "http_status": 200,
                "fault": None,
                "raw_body": "not json",
            },
            {
                "endpoint": "nope/nope",
                "time": 1000.5,
                "error_code": 60002,
                "http_status": 200,
                "fault": None,
                "body": {},
            },
            {
                "endpoint": GET_ALL,
                "time": 1000.5,
                "error_code": 70003,
                "http_status": 200,
                "fault": None,
                "body": {},
            },
        ],
    }
    latest = (await api.http.get("/_fake/calls?limit=2")).json()
    assert [c["endpoint"] for c in latest["calls"]] == ["nope/nope", GET_ALL]
    assert latest["kept"] == 4
    assert (await api.http.get("/_fake/calls?limit=0")).json()["calls"] == []
    assert len((await api.http.get("/_fake/calls?limit=99")).json()["calls"]) == 4


async def test_calls_default_to_the_latest_hundred(api) -> None:
    for _ in range(105):
        await api.call(GET_ALL)
    document = (await api.http.get("/_fake/calls")).json()
    assert document["kept"] == 105
    assert len(document["calls"]) == 100


async def test_calls_show_injected_faults(api) -> None:
    api.fake.bad_gateway_next(GET_ALL)
    assert (await api.post(GET_ALL)).status_code == 502
    (call,) = (await api.http.get("/_fake/calls")).json()["calls"]
    assert call["http_status"] == 502
    assert call["fault"] == "bad_gateway"
    assert call["error_code"] is None


@pytest.mark.parametrize("limit", ["99999999999999999999", "9" * 5000])
async def test_calls_take_a_huge_limit_as_all_kept(api, limit: str) -> None:
    for _ in range(3):
        await api.call(GET_ALL)
    response = await api.http.get(f"/_fake/calls?limit={limit}")
    assert response.status_code == 200
    assert len(response.json()["calls"]) == 3


@pytest.mark.parametrize("limit", ["-1", "x", "1.5", ""])
async def test_calls_refuse_a_bad_limit(api, limit: str) -> None:
    response = await api.http.get(f"/_fake/calls?limit={limit}")
    assert response.status_code == 400
    assert "limit" in response.json()["error"]


@pytest.mark.parametrize("path", ["/_fake", "/_fake/", "/_fake/state/x", "/_fake/robots"])
async def test_other_fake_paths_are_not_found(api, path: str) -> None:
    response = await api.http.get(path)
    assert response.status_code == 404
    assert "/_fake/state" in response.json()["error"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_the_routes_answer_get_only(api, method: str) -> None:
    response = await api.http.request(method, "/_fake/state", content=b"{}")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


async def test_state_is_strict_json_whatever_the_ids(api) -> None:
    # JSON allows a lone surrogate in a string; the answer escapes it (stays ASCII).
    raw = b'{"UserID": "@RBT#\\ud800"}'
    assert await api.code(CREATE, raw=raw) == 0
    await api.call(CREATE, raw=b'{"UserID": NaN}')
    state = await api.http.get("/_fake/state")
    assert state.content.isascii()
    assert state.json()["robots"] == [{"user_id": "@RBT#\ud800", "profile": {}}]
    calls = await api.http.get("/_fake/calls")
    json.loads(calls.text, parse_constant=_refuse)  # no NaN token
    assert "body" not in calls.json()["calls"][1]


def _refuse(token: str) -> None:
    raise AssertionError(f"not strict JSON: {token}")


async def test_state_over_a_real_socket() -> None:
    fake = FakeTencentChat()
    fake.create_room("room-1")
    async with fake.serve() as base_url, httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get("/_fake/state")
    assert response.json()["rooms"] == {"room-1": []}
    assert fake.calls == []
