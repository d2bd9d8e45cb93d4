"""A receiver's load, as a readiness probe reads it."""

from __future__ import annotations

import attrs

__all__ = ["Load"]


@attrs.frozen(slots=True)
class Load:
    """A snapshot of a receiver's handlers and backlog (:attr:`RobotCallbacks.load`).

    ``saturated``: the backlog is full, so the next after-event would be refused with
    503; ``ready`` is false then, and once the receiver is closed: a load balancer's
    readiness probe can send callbacks elsewhere meanwhile.
    """

    running: int  # after-event handlers running
    backlog: int  # after-events acknowledged, waiting for a handler slot
    max_handlers: int
    max_backlog: int
    signals_running: int
    max_signal_handlers: int
    saturated: bool
    closed: bool

    @property
    def ready(self) -> bool:
        """Whether the receiver takes every kind of callback now."""
        return not (self.closed or self.saturated)
