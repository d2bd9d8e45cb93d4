"""The SDK against the fake server: in-process through the pytest plugin, and over loopback."""

from __future__ import annotations

import asyncio

import pytest

from tencent_chat_robots import (
    DOCUMENTED_RATE_LIMIT,
    AiohttpTransport,
    APIConnectionError,
    AttemptRecord,
    AuthenticationError,
    BadResponseError,
    Endpoint,
    InvalidRequestError,
    LimitExceededError,
    NotFoundError,
    NotRoomMemberError,
    PermissionDeniedError,
    TencentChat,
)
from tencent_chat_robots.testing import FakeTencentChat
from tencent_chat_robots.testing.pytest_plugin import FakeChat


async def test_robot_lifecycle_through_every_endpoint(fake_chat: FakeChat) -> None:
    fake, chat = fake_chat
    fake.create_room("room-test")
    fake.create_live_group("@TGS#a6I4ZUUGO")
    await chat.create_robot("@RBT#001", nick="Jarvis", self_signature="hello")
    await chat.create_robot("@RBT#002")
    await chat.create_robot("@RBT#001")  # idempotent
    assert await chat.get_all_robots() == ["@RBT#001", "@RBT#002"]
    result = await chat.add_robot_to_room("room-test", "@RBT#001")
    assert result.request_id is not None
    await chat.add_robots_to_live_group("@TGS#a6I4ZUUGO", ["@RBT#001", "@RBT#002"])
    assert fake.room_members("room-test") == ["@RBT#001"]
    assert sorted(fake.live_group_members("@TGS#a6I4ZUUGO")) == ["@RBT#001", "@RBT#002"]
    await chat.remove_robots_from_live_group("@TGS#a6I4ZUUGO", ["@RBT#002"])
    await chat.remove_robot_from_room("room-test", "@RBT#001")
    await chat.delete_robot("@RBT#002")
    assert fake.live_group_members("@TGS#a6I4ZUUGO") == ["@RBT#001"]
    assert fake.room_members("room-test") == []
    assert await chat.get_all_robots() == ["@RBT#001"]


async def test_documented_refusals_arrive_as_typed_errors(fake_chat: FakeChat) -> None:
    fake, chat = fake_chat
    fake.create_room("room-1")
    await chat.create_robot("@RBT#001")
    with pytest.raises(NotFoundError) as room_missing:
        await chat.add_robot_to_room("no-such-room", "@RBT#001")
    assert room_missing.value.code == 100004
    assert room_missing.value.request_id is not None
    with pytest.raises(NotRoomMemberError):
        await chat.remove_robot_from_room("room-1", "@RBT#001")
    with pytest.raises(NotFoundError) as group_missing:
        await chat.add_robots_to_live_group("@TGS#nothere", ["@RBT#001"])
    assert group_missing.value.code == 10010
    for i in range(2, 21):
        await chat.create_robot(f"@RBT#{i:03d}")
    with pytest.raises(InvalidRequestError) as quota:
        await chat.create_robot("@RBT#021")
    assert quota.value.code == 10008


async def test_robots_per_room_limit() -> None:
    fake = FakeTencentChat(max_robots_per_room=2)
    fake.create_room("room-1")
    async with fake.client() as chat:
        for i in range(3):
            await chat.create_robot(f"@RBT#{i}")
        await chat.add_robot_to_room("room-1", "@RBT#0")
        await chat.add_robot_to_room("room-1", "@RBT#1")
        with pytest.raises(LimitExceededError):
            await chat.add_robot_to_room("room-1", "@RBT#2")


async def test_wrong_credentials_are_refused_by_the_server() -> None:
    fake = FakeTencentChat()
    async with fake.client(secret_key="not-the-key") as chat:
        with pytest.raises(AuthenticationError) as caught:
            await chat.get_all_robots()
    assert caught.value.code == 70009
    async with fake.client(admin="someone") as chat:
        with pytest.raises(PermissionDeniedError) as caught_admin:
            await chat.get_all_robots()
    assert caught_admin.value.code == 60010


async def test_injected_faults_are_absorbed_by_retries(fake_chat: FakeChat) -> None:
    fake, _ = fake_chat
    records: list[AttemptRecord] = []
    async with fake.client(on_attempt=records.append) as chat:
        fake.fail_next(Endpoint.CREATE_ROBOT, 10002, times=2)
        await chat.create_robot("@RBT#001")
        fake.bad_gateway_next(Endpoint.GET_ALL_ROBOTS)
        assert await chat.get_all_robots() == ["@RBT#001"]
    assert [r.attempt for r in records] == [1, 2, 3, 1, 2]
    assert len(fake.calls) == 5


async def test_a_saturated_endpoint_is_never_refused_for_frequency() -> None:
    """Real time, kept short: 300 gathered calls at the default 190/s (about 1.6 s).

    The exact bound on starts is proved on the virtual clock (test_limiter). Real time
    adds what no limiter controls: a garbage collection or the OS pausing the process
    between a start and its arrival (or its timestamp) shifts it by milliseconds. So
    here the check is the user's: the server sees at most the documented 200 in any
    second and refuses nothing, the margin that the default of 190 is there for.
    """
    fake = FakeTencentChat()
    async with fake.client() as chat:
        await asyncio.gather(*(chat.get_all_robots() for _ in range(300)))
    codes = [call.error_code for call in fake.calls]
    assert codes.count(0) == 300
    assert 60007 not in codes
    assert fake.max_arrivals_in_window(Endpoint.GET_ALL_ROBOTS) <= DOCUMENTED_RATE_LIMIT


async def test_without_pacing_the_fake_does_refuse() -> None:
    """The contrast that shows the limiter matters (and that the fake enforces 200/s)."""
    fake = FakeTencentChat()
    async with fake.client(rate_limit=None, max_retries=0) as chat:
        results = await asyncio.gather(
            *(chat.get_all_robots() for _ in range(260)), return_exceptions=True
        )
    refused = [r for r in results if isinstance(r, Exception)]
    assert refused
    assert all(getattr(r, "code", None) == 60007 for r in refused)


async def test_default_aiohttp_transport_over_loopback() -> None:
    fake = FakeTencentChat()
    fake.create_room("room-1")
    async with (
        fake.serve() as base_url,
        TencentChat(fake.sdkappid, fake.secret_key, admin=fake.admin, base_url=base_url) as chat,
    ):
        assert isinstance(chat._transport, AiohttpTransport)
        await chat.create_robot("@RBT#001")
        await asyncio.gather(*(chat.add_robot_to_room("room-1", "@RBT#001") for _ in range(20)))
        fake.drop_next(Endpoint.GET_ALL_ROBOTS)
        fake.bad_gateway_next(Endpoint.GET_ALL_ROBOTS)
        assert await chat.get_all_robots() == ["@RBT#001"]
        fake.drop_next(Endpoint.DELETE_ROBOT, times=10)
        with pytest.raises(APIConnectionError):
            await chat.delete_robot("@RBT#001")
    faults = [call.fault for call in fake.calls if call.endpoint == Endpoint.GET_ALL_ROBOTS]
    assert faults == ["dropped", "bad_gateway", None]


async def test_a_gateway_page_that_persists_is_a_bad_response(fake_chat: FakeChat) -> None:
    fake, chat = fake_chat
    fake.bad_gateway_next(Endpoint.GET_ALL_ROBOTS, times=10)
    with pytest.raises(BadResponseError) as caught:
        await chat.get_all_robots()
    assert caught.value.status_code == 502
    assert "502" in caught.value.excerpt
