"""Each endpoint's calls/second limit (60007), with an injected clock, and arrival records.

The documented rates: 200/s for each robot, room and live-group API, 100/s for each
live-room (live_engine) API.
"""

from __future__ import annotations

import json

import pytest

from tencent_chat_robots.testing import FakeTencentChat
from tencent_chat_robots.testing._app import _PRUNE_AT

GET_ALL = "openim_robot_http_svc/get_all_robots"
CREATE = "openim_robot_http_svc/create_robot"
LIVE_GET = "live_engine_http_srv/get_robot"
LIVE_ADD = "live_engine_http_srv/add_robot"
ROOM_ADD = "room_engine_http_srv/add_robot"
DOCUMENTED_RATES = {
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


async def burst(api, n: int, endpoint: str = GET_ALL, **query: str | None) -> list[int]:
    return [await api.code(endpoint, {}, **query) for _ in range(n)]


async def test_201st_call_in_a_second_is_refused(api, clock) -> None:
    assert await burst(api, 200) == [0] * 200
    assert await api.code(GET_ALL) == 60007
    # (t-1, t]: one second later the first 200 have left the window.
    clock.advance(1.0)
    assert await api.code(GET_ALL) == 0


@pytest.mark.parametrize(("endpoint", "rate"), DOCUMENTED_RATES.items())
async def test_each_endpoint_is_limited_at_its_documented_rate(
    api, clock, endpoint: str, rate: int
) -> None:
    # An empty body: refused by the endpoint's own rules, but every arrival counts.
    codes = await burst(api, rate + 1, endpoint)
    assert 60007 not in codes[:rate]
    assert codes[rate] == 60007
    clock.advance(1.0)
    assert await api.code(endpoint, {}) != 60007


async def test_a_live_room_call_past_100_is_refused(api, clock) -> None:
    api.fake.create_live_room("live-1")
    body = {"RoomId": "live-1"}
    assert [await api.code(LIVE_GET, body) for _ in range(101)] == [0] * 100 + [60007]
    assert api.fake.max_arrivals_in_window(LIVE_GET) == 101
    # The 200/s endpoints are not held to 100.
    assert await burst(api, 101) == [0] * 101


async def test_window_is_half_open(api, clock) -> None:
    assert await burst(api, 199) == [0] * 199
    clock.advance(0.5)
    assert await api.code(GET_ALL) == 0  # 200th
    clock.advance(0.499)
    assert await api.code(GET_ALL) == 60007  # 201 arrivals in (t-1, t]
    clock.advance(0.001)
    # Now exactly 1 s after the 199: they are out; the 200th and the refused one remain.
    assert await api.code(GET_ALL) == 0
    assert api.fake.max_arrivals_in_window(GET_ALL) == 201


async def test_refused_arrivals_count_too(api, clock) -> None:
    codes = await burst(api, 250)
    assert codes == [0] * 200 + [60007] * 50
    clock.advance(0.9)
    # 250 arrivals are still inside the window, refused or not.
    assert await api.code(GET_ALL) == 60007


async def test_limit_is_per_endpoint(api) -> None:
    assert await burst(api, 200) == [0] * 200
    assert await api.code(GET_ALL) == 60007
    assert await api.code(CREATE, {"UserID": "@RBT#1"}) == 0
    assert api.fake.max_arrivals_in_window(CREATE) == 1


async def test_limit_precedes_authentication_and_counts_failures(api) -> None:
    assert await burst(api, 200, usersig="garbage") == [70003] * 200
    assert await api.code(GET_ALL) == 60007
    assert await api.code(GET_ALL, usersig="garbage") == 60007


async def test_bad_paths_and_methods_are_not_arrivals(api) -> None:
    for _ in range(250):
        assert await api.code(GET_ALL, method="GET") == 60002
    assert api.fake.arrivals(GET_ALL) == []
    assert await api.code(GET_ALL) == 0


@pytest.mark.parametrize("fake_options", [{"rate_limit": 3}])
async def test_one_number_limits_every_endpoint(api, clock) -> None:
    assert await burst(api, 4) == [0, 0, 0, 60007]
    assert (await burst(api, 4, LIVE_GET))[3] == 60007
    assert set(api.fake.rate_limit.values()) == {3}


@pytest.mark.parametrize("fake_options", [{"rate_limit": None}])
async def test_limit_can_be_disabled(api) -> None:
    assert await burst(api, 300) == [0] * 300
    assert 60007 not in await burst(api, 150, LIVE_GET)
    assert api.fake.max_arrivals_in_window(GET_ALL) == 300
    assert set(api.fake.rate_limit.values()) == {None}


@pytest.mark.parametrize(
    "fake_options",
    # Named by path (with or without /v4/) or by TencentChat method; None: no limit.
    [{"rate_limit": {LIVE_GET: 2, "/v4/" + ROOM_ADD: 1, "get_all_robots": None}}],
)
async def test_limits_can_be_set_per_endpoint(api, clock) -> None:
    assert (await burst(api, 3, LIVE_GET))[2] == 60007
    assert (await burst(api, 2, ROOM_ADD))[1] == 60007
    assert 60007 not in await burst(api, 250)
    # The endpoints not named keep their documented rates.
    assert api.fake.rate_limit == {
        **DOCUMENTED_RATES,
        LIVE_GET: 2,
        ROOM_ADD: 1,
        GET_ALL: None,
    }


@pytest.mark.parametrize(
    ("rate_limit", "match"),
    [
        (0, "rate_limit must be a whole number >= 1"),
        (1.5, "rate_limit must be a whole number"),
        (True, "rate_limit must be a whole number"),
        ("200", "rate_limit must be a whole number"),
        ({LIVE_ADD: 0}, r"rate_limit\['live_engine_http_srv/add_robot'\] must be"),
        ({"live_engine_http_srv/add_robots": 5}, "unknown endpoint"),
    ],
)
def test_a_bad_rate_limit_is_refused(rate_limit: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FakeTencentChat(rate_limit=rate_limit)  # type: ignore[arg-type]


async def test_arrival_records(api, clock) -> None:
    start = clock.now
    await burst(api, 3)
    clock.advance(0.25)
    await burst(api, 2)
    assert api.fake.arrivals(GET_ALL) == [start] * 3 + [start + 0.25] * 2
    assert api.fake.max_arrivals_in_window(GET_ALL) == 5
    assert [c.time for c in api.fake.calls] == api.fake.arrivals(GET_ALL)
    # "/v4/..." spelling is accepted; typos are not.
    assert api.fake.max_arrivals_in_window("/v4/" + GET_ALL) == 5
    with pytest.raises(ValueError, match="unknown endpoint"):
        api.fake.arrivals("openim_robot_http_svc/get_all_robot")


async def test_reset_clears_history_but_not_the_limiter(api, clock) -> None:
    await burst(api, 200)
    api.fake.reset_calls()
    assert api.fake.arrivals(GET_ALL) == []
    assert api.fake.max_arrivals_in_window(GET_ALL) == 0
    assert api.fake.calls == []
    assert await api.code(GET_ALL) == 60007
    assert api.fake.max_arrivals_in_window(GET_ALL) == 1


@pytest.mark.parametrize("fake_options", [{"rate_limit": 5}])
async def test_limiter_survives_pruning(api, clock) -> None:
    # Fill the limiter's window up to its prune threshold, 4 arrivals per second (straight
    # into the app's synchronous handler: thousands of HTTP round trips would be slow)...
    path, query = f"/v4/{GET_ALL}", api.query().encode()
    for step in range(_PRUNE_AT // 4):
        if step:
            clock.advance(1.0)
        for _ in range(4):
            reply = api.fake.app.handle("POST", path, query, b"{}")
            assert json.loads(reply.body)["ErrorCode"] == 0
    clock.advance(0.5)
    # ...so the next arrival prunes; the last second's 4 must survive it.
    assert await burst(api, 2) == [0, 60007]
    assert api.fake.max_arrivals_in_window(GET_ALL) == 6


@pytest.mark.parametrize("fake_options", [{"rate_limit": 5, "latency_spread": 2.0, "seed": 1234}])
async def test_latency_spread_counts_jittered_arrivals_out_of_order(api, clock) -> None:
    receipts = []
    for _ in range(120):
        receipts.append(clock.now)
        await api.code(GET_ALL)
        clock.advance(0.05)
    calls = api.fake.calls
    times = [c.time for c in calls]
    # Each arrival is its receipt plus jitter in [0, 2].
    assert all(r <= t <= r + 2.0 for r, t in zip(receipts, times, strict=True))
    assert times != sorted(times)  # the jitter reordered them
    assert api.fake.arrivals(GET_ALL) == sorted(times)
    # Replay: a call is refused iff, when it arrived, more than 5 of the arrivals seen so
    # far (itself included, earlier receipts with later times excluded) fell in (t-1, t].
    expected = []
    for i, t in enumerate(times):
        in_window = sum(1 for s in times[: i + 1] if t - 1.0 < s <= t)
        expected.append(60007 if in_window > 5 else 0)
    assert [c.error_code for c in calls] == expected
    assert 0 < expected.count(60007) < len(expected)


async def test_same_seed_same_jitter(clock) -> None:
    import httpx

    results = []
    for _ in range(2):
        fake = FakeTencentChat(clock=clock, latency_spread=0.5, seed=7)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=fake.app), base_url="http://fake"
        ) as http:
            for _ in range(5):
                await http.post(f"/v4/{GET_ALL}", content=b"{}")
        results.append([c.time for c in fake.calls])
    assert results[0] == results[1]
    assert len(set(results[0])) == 5
