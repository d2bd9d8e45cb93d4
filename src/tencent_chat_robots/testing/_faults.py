"""Fault injection: scripted failures, random internal errors, latency and network jitter."""

from __future__ import annotations

import random
from collections import deque

__all__ = ["ConnectionDropped", "FaultPlan"]


class ConnectionDropped(Exception):
    """Raised by the fake's ASGI app to drop the connection without an answer.

    Under uvicorn the connection is closed mid-response; :class:`ASGIAppTransport`
    turns it into :class:`~tencent_chat_robots._exceptions.APIConnectionError`.
    """


def _check_times(times: int) -> None:
    if times < 1:
        raise ValueError("times must be at least 1")


class FaultPlan:
    """What should go wrong, per endpoint; the app consults it once per call.

    Not locked itself: the fake takes its lock around every use.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        latency_spread: float = 0.0,
        error_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.latency = latency
        self.latency_spread = latency_spread
        self.error_rate = error_rate
        self.rng = random.Random(seed)
        self._codes: dict[str, deque[int]] = {}
        self._bad_gateway: dict[str, int] = {}
        self._drops: dict[str, deque[bool]] = {}

    # Each setter validates so a typo fails where it was made, not in a later request.
    @property
    def latency(self) -> float:
        """Seconds every answer is held back."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency must not be negative")
        self._latency = float(seconds)

    @property
    def latency_spread(self) -> float:
        """Arrivals are counted at receipt + uniform(0, spread) seconds."""
        return self._latency_spread

    @latency_spread.setter
    def latency_spread(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency_spread must not be negative")
        self._latency_spread = float(seconds)

    @property
    def error_rate(self) -> float:
        """Probability that an authenticated call fails with an internal error."""
        return self._error_rate

    @error_rate.setter
    def error_rate(self, probability: float) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError("error_rate must be within [0, 1]")
        self._error_rate = float(probability)

    def fail_next(self, endpoint: str, code: int, times: int = 1) -> None:
        """Queue ``code`` as the answer to the next ``times`` authenticated calls."""
        _check_times(times)
        if code == 0:
            raise ValueError("code must be a non-zero error code")
        self._codes.setdefault(endpoint, deque()).extend([code] * times)

    def bad_gateway_next(self, endpoint: str, times: int = 1) -> None:
        """Answer the next ``times`` calls with an HTTP 502 HTML page."""
        _check_times(times)
        self._bad_gateway[endpoint] = self._bad_gateway.get(endpoint, 0) + times

    def drop_next(self, endpoint: str, times: int = 1, *, after_processing: bool = False) -> None:
        """Drop the connection of the next ``times`` calls, before or after acting on them."""
        _check_times(times)
        self._drops.setdefault(endpoint, deque()).extend([after_processing] * times)

    def take_drop(self, endpoint: str) -> bool | None:
        """``None`` if this call is not dropped, else whether it is processed first."""
        queue = self._drops.get(endpoint)
        return queue.popleft() if queue else None

    def take_bad_gateway(self, endpoint: str) -> bool:
        """Whether this call gets a 502 (consuming one)."""
        left = self._bad_gateway.get(endpoint, 0)
        if left:
            self._bad_gateway[endpoint] = left - 1
        return left > 0

    def take_error(self, endpoint: str, internal_code: int) -> int:
        """A scripted code if one is queued, else ``internal_code`` at ``error_rate``, else 0."""
        queue = self._codes.get(endpoint)
        if queue:
            return queue.popleft()
        if self._error_rate and self.rng.random() < self._error_rate:
            return internal_code
        return 0

    def arrival_offset(self) -> float:
        """Network jitter to add to a receipt time."""
        spread = self._latency_spread
        return self.rng.uniform(0.0, spread) if spread else 0.0

    def pending(self, endpoint: str) -> int:
        """Scripted faults (codes, 502s, drops) still queued for ``endpoint``."""
        return (
            len(self._codes.get(endpoint, ()))
            + self._bad_gateway.get(endpoint, 0)
            + len(self._drops.get(endpoint, ()))
        )

    def clear(self) -> None:
        """Cancel every scripted fault and reset latency, jitter and error rate."""
        self._codes.clear()
        self._bad_gateway.clear()
        self._drops.clear()
        self.latency = self.latency_spread = self.error_rate = 0.0
