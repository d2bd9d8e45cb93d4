"""Shared fixtures: the fake spoken to over raw HTTP (httpx + ASGI), never through the SDK.

Tests needing a differently configured fake parametrize ``fake_options``, e.g.
``@pytest.mark.parametrize("fake_options", [{"rate_limit": 5}])``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from tests._clocks import WALL, ManualClock

from tencent_chat_robots.testing import FakeTencentChat


@pytest.fixture
def wall() -> ManualClock:
    """The fake's wall clock, standing at ``WALL`` until moved."""
    return ManualClock(WALL)


class RawAPI:
    """Builds the documented URL and query by hand and posts raw bytes."""

    def __init__(self, fake: FakeTencentChat, http: httpx.AsyncClient) -> None:
        self.fake = fake
        self.http = http
        self.usersig = fake.usersig()

    def query(self, **overrides: str | None) -> str:
        """The documented query; an override of ``None`` leaves the parameter out."""
        params: dict[str, str | None] = {
            "sdkappid": str(self.fake.sdkappid),
            "identifier": self.fake.admin,
            "usersig": self.usersig,
            "random": "99999999",
            "contenttype": "json",
        }
        params.update(overrides)
        return urlencode({k: v for k, v in params.items() if v is not None})

    async def post(
        self,
        endpoint: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        method: str = "POST",
        path: str | None = None,
        **query: str | None,
    ) -> httpx.Response:
        content = raw if raw is not None else json.dumps({} if body is None else body).encode()
        url = f"{'/v4/' + endpoint if path is None else path}?{self.query(**query)}"
        return await self.http.request(method, url, content=content)

    async def call(self, endpoint: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
        """Post and return the envelope, checking the parts every answer shares."""
        response = await self.post(endpoint, body, **kwargs)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        envelope = response.json()
        assert isinstance(envelope, dict)
        code = envelope["ErrorCode"]
        assert type(code) is int
        assert envelope["ActionStatus"] == ("OK" if code == 0 else "FAIL")
        assert isinstance(envelope["ErrorInfo"], str)
        if code == 0:
            assert envelope["ErrorInfo"] == ""
        return envelope

    async def code(self, endpoint: str, body: Any = None, **kwargs: Any) -> int:
        code: int = (await self.call(endpoint, body, **kwargs))["ErrorCode"]
        return code

    async def create_robots(self, *user_ids: str) -> None:
        for user_id in user_ids:
            code = await self.code("openim_robot_http_svc/create_robot", {"UserID": user_id})
            assert code == 0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def fake_options() -> dict[str, Any]:
    return {}


@pytest.fixture
def fake(clock: ManualClock, fake_options: dict[str, Any]) -> FakeTencentChat:
    return FakeTencentChat(**{"clock": clock, **fake_options})


@pytest.fixture
async def api(fake: FakeTencentChat) -> AsyncIterator[RawAPI]:
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as http:
        yield RawAPI(fake, http)
