"""CliRunner helpers, and the fake served from a thread of its own.

The commands call ``asyncio.run`` themselves, so the server cannot share their loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import pytest
from click.testing import CliRunner, Result

from tencent_chat_robots.cli._main import cli
from tencent_chat_robots.testing import FakeTencentChat

from .._servers import fake_in_thread

ENV_VARS = (
    "TENCENT_CHAT_SDKAPPID",
    "TENCENT_CHAT_SECRET_KEY",
    "TENCENT_CHAT_ADMIN",
    "TENCENT_CHAT_REGION",
    "TENCENT_CHAT_BASE_URL",
)


class Served(NamedTuple):
    fake: FakeTencentChat
    base_url: str

    def invoke(self, *args: str) -> Result:
        """Run ``tencent-chat-robots ARGS`` against this fake."""
        return invoke(
            "--base-url",
            self.base_url,
            "--sdkappid",
            str(self.fake.sdkappid),
            "--secret-key",
            self.fake.secret_key,
            "--admin",
            self.fake.admin,
            *args,
        )


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own TENCENT_CHAT_* settings must not leak into a test."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def served() -> Iterator[Served]:
    fake = FakeTencentChat()
    with fake_in_thread(fake) as base_url:
        yield Served(fake, base_url)
