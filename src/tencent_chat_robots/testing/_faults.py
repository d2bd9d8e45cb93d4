"""Fault injection: scripted failures, random internal errors, latency and network jitter.

Each scripted fault and added latency is aimed at a :class:`Target`: an endpoint, the
objects a request's body names (a room, a group, a robot, a user), or both.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .._config import require_number
from .._endpoints import Endpoint
from .._exceptions import ValidationError

__all__ = ["TARGET_FIELDS", "AddedLatency", "ConnectionDropped", "FaultPlan", "Target"]

_V = TypeVar("_V")

_ROOM = ("RoomId",)
_GROUP = ("GroupId",)
_SENDER_AND_RECIPIENT = ("From_Account", "To_Account")

# Which request fields name a room, a group, a robot or a user, per API: field names as
# the vendor pages give them (../api-docs; the message and live-room APIs in
# robot-conversation.md). A field holds one id or a list of ids. The robot APIs' account
# fields hold robots only; a message's sender and recipient may be either.
TARGET_FIELDS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    Endpoint.CREATE_ROBOT: {"robot": ("UserID",)},
    Endpoint.GET_ALL_ROBOTS: {},
    Endpoint.DELETE_ROBOT: {"robot": ("Robot_Account",)},
    Endpoint.ROOM_ADD_ROBOT: {"room": _ROOM, "robot": ("Member_Account",)},
    Endpoint.ROOM_DELETE_ROBOT: {"room": _ROOM, "robot": ("Member_Account",)},
    Endpoint.LIVE_GROUP_ADD_ROBOTS: {"group": _GROUP, "robot": ("Member_Account",)},
    Endpoint.LIVE_GROUP_DEL_ROBOTS: {"group": _GROUP, "robot": ("Member_Account",)},
    Endpoint.LIVE_ROOM_ADD_ROBOT: {"room": _ROOM, "robot": ("RobotList_Account",)},
    Endpoint.LIVE_ROOM_DEL_ROBOT: {"room": _ROOM, "robot": ("RobotList_Account",)},
    Endpoint.LIVE_ROOM_GET_ROBOT: {"room": _ROOM},
    Endpoint.SEND_C2C_MESSAGE: {"robot": _SENDER_AND_RECIPIENT, "user": _SENDER_AND_RECIPIENT},
    Endpoint.SEND_GROUP_MESSAGE: {
        "group": _GROUP,
        "robot": ("From_Account",),
        "user": ("From_Account",),
    },
    Endpoint.MODIFY_C2C_MESSAGE: {"robot": _SENDER_AND_RECIPIENT, "user": _SENDER_AND_RECIPIENT},
    Endpoint.MODIFY_GROUP_MESSAGE: {"group": _GROUP},
    Endpoint.SEND_STREAM_CHUNK: {"robot": ("From_Account",), "user": ("To_Account",)},
}


class ConnectionDropped(Exception):
    """Raised by the fake's ASGI app to drop the connection without an answer.

    Under uvicorn the connection is closed mid-response; :class:`ASGIAppTransport`
    turns it into :class:`~tencent_chat_robots._exceptions.APIConnectionError`.
    """


@dataclass(frozen=True, slots=True)
class Target:
    """What a fault is aimed at: calls of ``endpoint`` (any, if ``None``) whose body names
    every object given (fields: :data:`TARGET_FIELDS`). Built checked by the fake."""

    endpoint: str | None = None
    room: str | None = None
    group: str | None = None
    robot: str | None = None
    user: str | None = None

    def objects(self) -> dict[str, str]:
        """The objects aimed at, by kind (``room``, ``group``, ``robot``, ``user``)."""
        named = {"room": self.room, "group": self.group, "robot": self.robot, "user": self.user}
        return {kind: value for kind, value in named.items() if value is not None}

    def matches(self, endpoint: str, body: Any) -> bool:
        """Whether a call of ``endpoint`` with this (parsed) body is aimed at."""
        if self.endpoint is not None and endpoint != self.endpoint:
            return False
        objects = self.objects()
        if not objects:
            return True
        fields = TARGET_FIELDS.get(endpoint)
        if fields is None or not isinstance(body, dict):
            return False
        return all(_names(body, fields.get(kind, ()), value) for kind, value in objects.items())


def _names(body: dict[str, Any], fields: tuple[str, ...], value: str) -> bool:
    for field in fields:
        named = body.get(field)
        if named == value or (isinstance(named, list) and value in named):
            return True
    return False


class AddedLatency:
    """Latency added by :meth:`FakeTencentChat.add_latency`: ``remove()`` it, or use it
    as a context manager (``with fake.add_latency(...):``) to remove it on exit."""

    __slots__ = ("_remove", "seconds", "target")

    def __init__(
        self, seconds: float, target: Target, remove: Callable[[AddedLatency], None]
    ) -> None:
        self.seconds = seconds
        self.target = target
        self._remove = remove

    def remove(self) -> None:
        """Stop delaying answers (calls already waiting keep their delay); idempotent."""
        self._remove(self)

    def __enter__(self) -> AddedLatency:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"AddedLatency({self.seconds!r}, {self.target!r})"


@dataclass(slots=True)
class _Scripted(Generic[_V]):
    target: Target
    value: _V
    left: int


class _Queue(Generic[_V]):
    """Scripted faults of one kind in order of registration; a call takes the first
    one aimed at it."""

    def __init__(self) -> None:
        self._entries: list[_Scripted[_V]] = []

    def add(self, target: Target, value: _V, times: int) -> None:
        self._entries.append(_Scripted(target, value, times))

    def take(self, endpoint: str, body: Any) -> _V | None:
        for index, entry in enumerate(self._entries):
            if entry.target.matches(endpoint, body):
                entry.left -= 1
                if not entry.left:
                    del self._entries[index]
                return entry.value
        return None

    def pending(self, target: Target) -> int:
        return sum(entry.left for entry in self._entries if entry.target == target)

    def clear(self) -> None:
        self._entries.clear()


def _times(times: int) -> int:
    return require_number("times", times, minimum=1, integer=True)


class FaultPlan:
    """What should go wrong; the app consults it once per call.

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
        self._codes: _Queue[int] = _Queue()
        self._bad_gateway: _Queue[bool] = _Queue()
        self._drops: _Queue[bool] = _Queue()
        self._latencies: list[AddedLatency] = []

    # Each setter validates so a typo fails where it was made, not in a later request.
    @property
    def latency(self) -> float:
        """Seconds every answer is held back."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._latency = float(require_number("latency", seconds, minimum=0))

    @property
    def latency_spread(self) -> float:
        """Arrivals are counted at receipt + uniform(0, spread) seconds."""
        return self._latency_spread

    @latency_spread.setter
    def latency_spread(self, seconds: float) -> None:
        self._latency_spread = float(require_number("latency_spread", seconds, minimum=0))

    @property
    def error_rate(self) -> float:
        """Probability that an authenticated call fails with an internal error."""
        return self._error_rate

    @error_rate.setter
    def error_rate(self, probability: float) -> None:
        checked = require_number("error_rate", probability, minimum=0, maximum=1)
        self._error_rate = float(checked)

    def fail_next(self, target: Target, code: int, times: int = 1) -> None:
        """Queue ``code`` as the answer to the next ``times`` authenticated calls aimed at."""
        times = _times(times)
        if isinstance(code, bool) or not isinstance(code, int) or code == 0:
            raise ValidationError(f"code must be a non-zero error code, got {code!r}")
        self._codes.add(target, code, times)

    def bad_gateway_next(self, target: Target, times: int = 1) -> None:
        """Answer the next ``times`` calls aimed at with an HTTP 502 HTML page."""
        self._bad_gateway.add(target, True, _times(times))

    def drop_next(self, target: Target, times: int = 1, *, after_processing: bool = False) -> None:
        """Drop the connection of the next ``times`` calls aimed at, before or after acting."""
        self._drops.add(target, bool(after_processing), _times(times))

    def add_latency(
        self, target: Target, seconds: float, remove: Callable[[AddedLatency], None]
    ) -> AddedLatency:
        """Hold back the answers to calls aimed at by ``seconds`` more, until removed."""
        added = AddedLatency(float(require_number("seconds", seconds, minimum=0)), target, remove)
        self._latencies.append(added)
        return added

    def remove_latency(self, added: AddedLatency) -> None:
        self._latencies = [entry for entry in self._latencies if entry is not added]

    def latency_for(self, endpoint: str, body: Any) -> float:
        """This call's delay: :attr:`latency` plus every added latency aimed at it."""
        extra = sum(a.seconds for a in self._latencies if a.target.matches(endpoint, body))
        return self._latency + extra

    def take_drop(self, endpoint: str, body: Any) -> bool | None:
        """``None`` if this call is not dropped, else whether it is processed first."""
        return self._drops.take(endpoint, body)

    def take_bad_gateway(self, endpoint: str, body: Any) -> bool:
        """Whether this call gets a 502 (consuming one)."""
        return self._bad_gateway.take(endpoint, body) is not None

    def take_error(self, endpoint: str, body: Any, internal_code: int) -> int:
        """A scripted code if one is queued, else ``internal_code`` at ``error_rate``, else 0."""
        code = self._codes.take(endpoint, body)
        if code is not None:
            return code
        if self._error_rate and self.rng.random() < self._error_rate:
            return internal_code
        return 0

    def arrival_offset(self) -> float:
        """Network jitter to add to a receipt time."""
        spread = self._latency_spread
        return self.rng.uniform(0.0, spread) if spread else 0.0

    def pending(self, target: Target) -> int:
        """Scripted faults (codes, 502s, drops) still queued for exactly ``target``."""
        return sum(queue.pending(target) for queue in (self._codes, self._bad_gateway, self._drops))

    def clear(self) -> None:
        """Cancel every scripted fault and added latency; reset latency, jitter, error rate."""
        for queue in (self._codes, self._bad_gateway, self._drops):
            queue.clear()
        self._latencies.clear()
        self.latency = self.latency_spread = self.error_rate = 0.0
