"""pytest plugin (entry point ``tencent_chat_robots``): the ``fake_chat`` fixture.

.. code-block:: python

    async def test_my_bot(fake_chat):
        fake_chat.fake.create_room("room-1")
        await my_bot_setup(fake_chat.chat)
        assert fake_chat.fake.room_members("room-1") == ["@RBT#helper"]
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from ._fake import FakeTencentChat

if TYPE_CHECKING:
    from .._client import TencentChat

__all__ = ["FakeChat", "fake_chat"]

_async_fixture: Callable[..., Any]
try:
    import pytest_asyncio

    _async_fixture = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - anyio's plugin can still drive it in anyio tests
    _async_fixture = pytest.fixture


class FakeChat(NamedTuple):
    """A fresh fake server and a ``TencentChat`` client connected to it in-process."""

    fake: FakeTencentChat
    chat: TencentChat


async def _fake_chat() -> AsyncIterator[FakeChat]:
    """A :class:`FakeChat` per test; the client is closed afterwards."""
    fake = FakeTencentChat()
    chat = fake.client()
    try:
        yield FakeChat(fake, chat)
    finally:
        try:
            await chat.aclose()
        finally:
            await fake.aclose()  # callbacks under way, if the test set one


# Applied as a call, not a decorator: the two fixture decorators are typed differently.
fake_chat = _async_fixture(_fake_chat, name="fake_chat")
"""The fixture: a :class:`FakeChat` (a fresh fake and a client of it) per test."""
