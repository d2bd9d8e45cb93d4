"""The README's quickstart runs as written, against the fake server on loopback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tencent_chat_robots import Region
from tencent_chat_robots.testing import FakeTencentChat

from ._servers import fake_in_thread

README = Path(__file__).resolve().parent.parent / "README.md"


def _quickstart() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_quickstart_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    code = _quickstart()
    rooms = re.search(r"range\((\d+)\)", code)
    assert rooms is not None
    fake = FakeTencentChat(sdkappid=1400000000, secret_key="...", admin="administrator")
    fake.create_room("room-test")
    fake.create_live_group("@TGS#a6I4ZUUGO")
    for i in range(int(rooms.group(1))):
        fake.create_room(f"room-{i}")
    with fake_in_thread(fake) as base_url:
        # The example names a region: for this test, that region lives on loopback.
        monkeypatch.setattr(Region, "base_url", property(lambda _: base_url))
        exec(compile(code, str(README), "exec"), {"__name__": "__main__"})
    assert fake.robots == []  # created, used, deleted
    assert fake.room_members("room-1") == ["@RBT#001"]
    assert len({call.endpoint for call in fake.calls}) == 7
