"""PLACEHOLDER: the transport seam (being written). Contract below is fixed."""

from __future__ import annotations

from typing import Protocol

import attrs

__all__ = ["RawResponse", "Transport"]


@attrs.frozen(slots=True)
class RawResponse:
    """What a transport hands back: the HTTP status and the body bytes."""

    status_code: int
    content: bytes


class Transport(Protocol):
    """Sends one POST and returns its status and body; the SDK's only door to the network.

    Raises :class:`APIConnectionError` / :class:`APITimeoutError` for transport faults.
    """

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse: ...

    async def aclose(self) -> None: ...
