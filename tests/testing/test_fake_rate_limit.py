"""The 200 calls/second/endpoint limit (60007), with an injected clock, and arrival records."""

from __future__ import annotations

import json

import pytest

from tencent_chat_robots.testing import FakeTencentChat
from tencent_chat_robots.testing._app import _PRUNE_AT

GET_ALL = "openim_robot_http_svc/get_all_robots"
CREATE = "openim_robot_http_svc/create_robot"


async def burst(api, n: int, endpoint: str = GET_ALL, **query: str | None) -> list[int]:
    return [await api.code(endpoint, {}, **query) for _ in range(n)]


async def test_201st_call_in_a_second_is_refused(api, clock) -> None:
    assert await burst(api, 200) == [0] * 200
    assert await api.code(GET_ALL) == 60007
    # (t-1, t]: one second later the first 200 have left the window.
    clock.advance(1.0)
    assert await api.code(GET_ALL) == 0


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
async def test_limit_is_configurable(api, clock) -> None:
    assert await burst(api, 4) == [0, 0, 0, 60007]


@pytest.mark.parametrize("fake_options", [{"rate_limit": None}])
async def test_limit_can_be_disabled(api) -> None:
    assert await burst(api, 300) == [0] * 300
    assert api.fake.max_arrivals_in_window(GET_ALL) == 300


def test_rate_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        FakeTencentChat(rate_limit=0)


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
