"""The pytest plugin's ``fake_chat`` fixture (entry point ``tencent_chat_robots``)."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

from tencent_chat_robots import TencentChat
from tencent_chat_robots.testing import FakeTencentChat, pytest_plugin


def _plugin_installed() -> bool:
    entry_points = importlib.metadata.entry_points(group="pytest11")
    return any(ep.value == "tencent_chat_robots.testing.pytest_plugin" for ep in entry_points)


@pytest.mark.skipif(not _plugin_installed(), reason="package not installed: no pytest11 entry")
async def test_fake_chat_fixture(fake_chat) -> None:
    assert isinstance(fake_chat, pytest_plugin.FakeChat)
    fake, chat = fake_chat
    assert isinstance(fake, FakeTencentChat)
    assert isinstance(chat, TencentChat)
    fake.create_room("room-1")
    await chat.create_robot("@RBT#1")
    await chat.add_robot_to_room("room-1", "@RBT#1")
    assert fake.room_members("room-1") == ["@RBT#1"]
    assert [c.endpoint for c in fake.calls] == [
        "openim_robot_http_svc/create_robot",
        "room_engine_http_srv/add_robot",
    ]


async def test_fixture_closes_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[bool] = []

    class StubChat:
        async def aclose(self) -> None:
            closed.append(True)

    def client(self: FakeTencentChat, **options: Any) -> StubChat:
        return StubChat()

    monkeypatch.setattr(FakeTencentChat, "client", client)
    generator = pytest_plugin._fake_chat()
    value = await generator.__anext__()
    assert isinstance(value.chat, StubChat)
    assert closed == []
    with pytest.raises(StopAsyncIteration):
        await generator.__anext__()
    assert closed == [True]
