"""fake.serve(): the fake under uvicorn on a real loopback socket."""

from __future__ import annotations

import re

import httpx
import pytest

from tencent_chat_robots.testing import FakeTencentChat

CREATE = "openim_robot_http_svc/create_robot"


async def test_serve_over_loopback() -> None:
    fake = FakeTencentChat()
    fake.drop_next(CREATE)
    query = (
        f"sdkappid={fake.sdkappid}&identifier={fake.admin}&usersig={fake.usersig()}"
        "&random=1&contenttype=json"
    )
    async with fake.serve() as base_url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
        assert not base_url.endswith(":0")
        async with httpx.AsyncClient(base_url=base_url) as http:
            # An injected drop closes the connection without a complete answer.
            with pytest.raises(httpx.TransportError):
                await http.post(f"/v4/{CREATE}?{query}", content=b'{"UserID": "@RBT#0"}')
            response = await http.post(f"/v4/{CREATE}?{query}", json={"UserID": "@RBT#1"})
            assert response.status_code == 200
            assert response.json() == {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
            response = await http.get(f"/v4/{CREATE}?{query}")
            assert response.json()["ErrorCode"] == 60002
    assert fake.robots == ["@RBT#1"]
    assert [c.fault for c in fake.calls] == ["dropped", None, None]
    # Stopped: the port no longer answers.
    async with httpx.AsyncClient(base_url=base_url) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"/v4/{CREATE}?{query}", content=b"{}")
