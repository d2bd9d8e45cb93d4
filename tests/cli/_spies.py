"""Spies on a command's client: the bulk runs it made, the permits its calls asked for."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pytest

from tencent_chat_robots import BulkRun, RateLimiter, TencentChat
from tencent_chat_robots.testing import FakeTencentChat


def spy_bulk_runs(monkeypatch: pytest.MonkeyPatch) -> list[BulkRun]:
    """Every ``chat.bulk(...)`` run, in order."""
    runs: list[BulkRun] = []
    bulk = TencentChat.bulk

    def spied(self: TencentChat, calls: Any, **options: Any) -> BulkRun:
        runs.append(bulk(self, calls, **options))
        return runs[-1]

    monkeypatch.setattr(TencentChat, "bulk", spied)
    return runs


def spy_permits(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[tuple[str, str]]:
    """How many rate permits were asked for, by (endpoint, priority class)."""
    permits: collections.Counter[tuple[str, str]] = collections.Counter()
    acquire = RateLimiter.acquire

    async def counted(
        self: RateLimiter, key: str, *, priority: Any = "interactive", deadline: Any = None
    ) -> None:
        permits[key, priority] += 1
        await acquire(self, key, priority=priority, deadline=deadline)

    monkeypatch.setattr(RateLimiter, "acquire", counted)
    return permits


def spy_fakes(
    monkeypatch: pytest.MonkeyPatch,
    module: Any,
    prepare: Callable[[FakeTencentChat], object] = lambda fake: None,
) -> list[FakeTencentChat]:
    """The fakes ``module`` makes (``FakeTencentChat(...)``), each ``prepare``d first."""
    fakes: list[FakeTencentChat] = []

    def make(**options: Any) -> FakeTencentChat:
        fakes.append(FakeTencentChat(**options))
        prepare(fakes[-1])
        return fakes[-1]

    monkeypatch.setattr(module, "FakeTencentChat", make)
    return fakes


def received(fake: FakeTencentChat) -> collections.Counter[str]:
    """The requests the fake received, by endpoint."""
    return collections.Counter(call.endpoint for call in fake.calls)
