"""FakeTencentChat: the fake server's Python face (set-up, fault injection, inspection)."""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .._endpoints import BY_METHOD, BY_PATH, Endpoint
from .._usersig import generate_usersig
from ._app import Call, FakeApp
from ._asgi_transport import ASGIAppTransport
from ._faults import FaultPlan
from ._serve import serve
from ._state import ENDPOINTS, ChatState

if TYPE_CHECKING:
    from .._client import TencentChat

__all__ = ["FAKE_BASE_URL", "FakeTencentChat", "RateLimitSetting", "resolve_rate_limits"]

FAKE_BASE_URL = "http://fake.tencent-chat.invalid"

RateLimitSetting: TypeAlias = int | Mapping[str, int | None] | Literal["documented"] | None
"""``FakeTencentChat(rate_limit=...)``: see :func:`resolve_rate_limits`."""


def _endpoint(endpoint: str) -> str:
    """The path ``endpoint`` names: a path (``/v4/`` optional) or a ``TencentChat`` method."""
    spec = BY_METHOD.get(endpoint)
    name = spec.path if spec else endpoint.removeprefix("/").removeprefix("v4/")
    if name not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {', '.join(ENDPOINTS)}")
    return name


def _limit(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, or None for no limit: {value!r}")
    return value


def resolve_rate_limits(rate_limit: RateLimitSetting) -> dict[str, int | None]:
    """Each endpoint path's limit of arrivals per second (``None``: no limit).

    ``"documented"``: each endpoint's documented rate (200/s; 100/s for live_engine).
    ``None``: no limit anywhere. An int: that limit for every endpoint. A mapping of
    endpoints (paths or method names) to limits: those, the others documented.
    """
    limits: dict[str, int | None] = {path: spec.documented_rate for path, spec in BY_PATH.items()}
    if rate_limit == "documented":
        return limits
    if rate_limit is None or not isinstance(rate_limit, Mapping):
        checked = _limit("rate_limit", rate_limit)
        return dict.fromkeys(limits, checked)
    for endpoint, limit in rate_limit.items():
        limits[_endpoint(endpoint)] = _limit(f"rate_limit[{endpoint!r}]", limit)
    return limits


class FakeTencentChat:
    """An in-memory Tencent Cloud Chat app serving the robot REST endpoints.

    It serves every path of the SDK's endpoint table, each by the rules its vendor page
    documents (:mod:`._state`). ``rate_limit``: see :func:`resolve_rate_limits`; by
    default each endpoint refuses (60007) arrivals past its documented rate in any
    second. ``clock`` (default :func:`time.monotonic`, must not go backwards) times
    arrivals for the rate limit and :class:`Call` records; UserSig expiry uses the wall
    clock.
    ``seed`` makes ``error_rate`` and ``latency_spread`` draws reproducible.
    ``keep_history`` caps :attr:`calls` and each endpoint's arrival history to the latest
    records (``None``: keep all), for a fake left running under load.
    Endpoints are named ``"service/command"``, e.g. ``"room_engine_http_srv/add_robot"``
    (``"/v4/..."`` too), or by their ``TencentChat`` method, e.g. ``"add_robot_to_room"``.
    """

    def __init__(
        self,
        *,
        sdkappid: int = 1400000000,
        secret_key: str = "fake-secret-key",
        admin: str = "administrator",
        rate_limit: RateLimitSetting = "documented",
        max_robots: int = 20,
        max_robots_per_room: int = 10,
        max_robots_per_live_room: int = 3,
        clock: Callable[[], float] = time.monotonic,
        latency: float = 0.0,
        latency_spread: float = 0.0,
        error_rate: float = 0.0,
        seed: int | None = None,
        keep_history: int | None = None,
    ) -> None:
        rate_limits = resolve_rate_limits(rate_limit)
        self._lock = threading.Lock()
        self._state = ChatState(
            max_robots=max_robots,
            max_robots_per_room=max_robots_per_room,
            max_robots_per_live_room=max_robots_per_live_room,
        )
        self._faults = FaultPlan(
            latency=latency, latency_spread=latency_spread, error_rate=error_rate, seed=seed
        )
        self._app = FakeApp(
            sdkappid=sdkappid,
            secret_key=secret_key,
            admin=admin,
            state=self._state,
            faults=self._faults,
            rate_limits=rate_limits,
            clock=clock,
            lock=self._lock,
            keep_history=keep_history,
        )

    # --- identity and wiring ---

    @property
    def sdkappid(self) -> int:
        return self._app.sdkappid

    @property
    def secret_key(self) -> str:
        return self._app.secret_key

    @property
    def admin(self) -> str:
        return self._app.admin

    @property
    def rate_limit(self) -> Mapping[str, int | None]:
        """Per endpoint path, the arrivals allowed in any 1-second window (``None``: no limit).

        A read-only view: by default ``{"openim_robot_http_svc/create_robot": 200, ...,
        "live_engine_http_srv/add_robot": 100, ...}``.
        """
        return types.MappingProxyType(self._app.rate_limits)

    @property
    def app(self) -> FakeApp:
        """The ASGI application."""
        return self._app

    def usersig(self, identifier: str | None = None, *, expire: int = 86400) -> str:
        """A valid UserSig for ``identifier`` (default: the admin)."""
        who = self.admin if identifier is None else identifier
        return generate_usersig(self.sdkappid, self.secret_key, who, expire)

    def client(self, **options: Any) -> TencentChat:
        """A ``TencentChat`` wired to this fake in-process; ``options`` override any argument."""
        # Lazy: importing the testing package must not import (or cycle with) the client.
        from tencent_chat_robots import TencentChat

        kwargs: dict[str, Any] = {
            "sdkappid": self.sdkappid,
            "secret_key": self.secret_key,
            "admin": self.admin,
            "base_url": FAKE_BASE_URL,
            "transport": ASGIAppTransport(self._app),
        }
        kwargs.update(options)
        return TencentChat(**kwargs)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> AbstractAsyncContextManager[str]:
        """``async with fake.serve() as base_url:`` runs uvicorn on a loopback port.

        Besides the Tencent paths it answers ``GET /_fake/state`` (:meth:`snapshot`) and
        ``GET /_fake/calls``, never counted nor recorded (:meth:`FakeApp.inspect`).
        """
        return serve(self._app, host, port)

    # --- rooms, live groups and live rooms (no REST API creates them) ---

    def create_room(self, room_id: str) -> None:
        """Create an empty room (no-op if it exists)."""
        with self._lock:
            self._state.create_room(room_id)

    def dismiss_room(self, room_id: str) -> None:
        """Remove a room; later calls naming it get 100004. KeyError if unknown."""
        with self._lock:
            self._state.dismiss_room(room_id)

    def create_live_group(self, group_id: str) -> None:
        """Create an empty AVChatRoom group (no-op if it exists); ValueError if malformed."""
        with self._lock:
            self._state.create_live_group(group_id)

    def dismiss_live_group(self, group_id: str) -> None:
        """Remove a live group; later calls naming it get 10010. KeyError if unknown."""
        with self._lock:
            self._state.dismiss_live_group(group_id)

    def create_live_room(self, room_id: str) -> None:
        """Create an empty TUILiveKit live room (no-op if it exists).

        ValueError if ``room_id`` is not 1 to 48 UTF-8 bytes, or names a TUIRoom room
        (live_engine calls naming a TUIRoom room or a live group get 100006).
        """
        with self._lock:
            self._state.create_live_room(room_id)

    def dismiss_live_room(self, room_id: str) -> None:
        """Dissolve a live room; later calls naming it get 100004. KeyError if unknown."""
        with self._lock:
            self._state.dismiss_live_room(room_id)

    # --- arranging state directly (as if earlier REST calls had done it) ---

    def create_robot(self, user_id: str, **profile: str) -> None:
        """Create a robot by the documented rules without a REST call (none is logged).

        ``profile`` takes the vendor's keys: ``Nick``, ``FaceUrl``, ``SelfSignature``.
        ValueError, naming the code the server would answer, if the rules refuse it.
        """
        self._arrange(Endpoint.CREATE_ROBOT, {"UserID": user_id, **profile})

    def add_room_member(self, room_id: str, robot: str) -> None:
        """Put a robot into a room without a REST call; ValueError if the rules refuse."""
        self._arrange(Endpoint.ROOM_ADD_ROBOT, {"RoomId": room_id, "Member_Account": robot})

    def add_live_group_members(self, group_id: str, robots: list[str]) -> None:
        """Pin robots to a live group without a REST call; ValueError if the rules refuse."""
        body = {"GroupId": group_id, "Member_Account": list(robots)}
        self._arrange(Endpoint.LIVE_GROUP_ADD_ROBOTS, body)

    def add_live_room_robots(self, room_id: str, robots: list[str]) -> None:
        """Put robots into a live room without a REST call; ValueError if the rules refuse."""
        body = {"RoomId": room_id, "RobotList_Account": list(robots)}
        self._arrange(Endpoint.LIVE_ROOM_ADD_ROBOT, body)

    def _arrange(self, endpoint: str, body: dict[str, Any]) -> None:
        with self._lock:
            answer = self._state.handle(endpoint, body)
        if answer.code != 0:
            raise ValueError(f"{endpoint} would answer {answer.code}: {answer.info}")

    # --- state inspection ---

    @property
    def robots(self) -> list[str]:
        """Valid robot UserIDs, in creation order."""
        with self._lock:
            return self._state.robots()

    def robot_profile(self, user_id: str) -> dict[str, str]:
        """The Nick/FaceUrl/SelfSignature set for a robot (valid or not). KeyError if unknown."""
        with self._lock:
            return self._state.robot_profile(user_id)

    def room_members(self, room_id: str) -> list[str]:
        """Robots in a room, in joining order. KeyError if the room does not exist."""
        with self._lock:
            return self._state.room_members(room_id)

    def live_group_members(self, group_id: str) -> list[str]:
        """Robots in a live group, in joining order. KeyError if the group does not exist."""
        with self._lock:
            return self._state.live_group_members(group_id)

    def live_room_robots(self, room_id: str) -> list[str]:
        """Robots in a live room, in joining order. KeyError if the room does not exist."""
        with self._lock:
            return self._state.live_room_robots(room_id)

    def snapshot(self) -> dict[str, Any]:
        """All of the state as one JSON-ready document, what ``GET /_fake/state`` answers.

        ``{"robots": [{"user_id", "profile"}], "deleted_robots": [...], "rooms": {id:
        [robots]}, "live_groups": {...}, "live_rooms": {...}}``; a copy.
        """
        with self._lock:
            return self._state.snapshot()

    # --- call inspection ---

    @property
    def calls(self) -> list[Call]:
        """Every request received since the last :meth:`reset_calls`, in order of receipt."""
        with self._lock:
            return list(self._app.calls)

    def arrivals(self, endpoint: str) -> list[float]:
        """Arrival times counted for ``endpoint`` since the last reset, sorted."""
        name = _endpoint(endpoint)
        with self._lock:
            return self._app.history[name].times()

    def max_arrivals_in_window(self, endpoint: str) -> int:
        """The most arrivals at ``endpoint`` in any window ``(t-1, t]`` since the last reset."""
        name = _endpoint(endpoint)
        with self._lock:
            return self._app.history[name].max_count()

    def reset_calls(self) -> None:
        """Forget logged calls and arrival history; the rate limiter keeps its memory."""
        with self._lock:
            self._app.calls.clear()
            for window in self._app.history.values():
                window.clear()

    # --- fault injection ---

    def fail_next(self, endpoint: str, code: int, times: int = 1) -> None:
        """Answer the next ``times`` authenticated calls of ``endpoint`` with ``code``."""
        name = _endpoint(endpoint)
        with self._lock:
            self._faults.fail_next(name, code, times)

    def bad_gateway_next(self, endpoint: str, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``endpoint`` with an HTTP 502 HTML page."""
        name = _endpoint(endpoint)
        with self._lock:
            self._faults.bad_gateway_next(name, times)

    def drop_next(self, endpoint: str, times: int = 1, *, after_processing: bool = False) -> None:
        """Close the connection of the next ``times`` calls without an answer.

        With ``after_processing`` the call takes effect first (the client cannot tell).
        """
        name = _endpoint(endpoint)
        with self._lock:
            self._faults.drop_next(name, times, after_processing=after_processing)

    @property
    def latency(self) -> float:
        """Seconds added before every answer."""
        return self._faults.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        with self._lock:
            self._faults.latency = seconds

    @property
    def latency_spread(self) -> float:
        """Arrivals are counted against the rate limit at receipt + uniform(0, spread) s."""
        return self._faults.latency_spread

    @latency_spread.setter
    def latency_spread(self, seconds: float) -> None:
        with self._lock:
            self._faults.latency_spread = seconds

    @property
    def error_rate(self) -> float:
        """Probability of an internal error per authenticated call.

        10002; 100001 for rooms and live rooms (the room_engine and live_engine services).
        """
        return self._faults.error_rate

    @error_rate.setter
    def error_rate(self, probability: float) -> None:
        with self._lock:
            self._faults.error_rate = probability

    def seed(self, seed: int | None) -> None:
        """Reseed the random draws of ``error_rate`` and ``latency_spread``."""
        with self._lock:
            self._faults.rng.seed(seed)

    def pending_faults(self, endpoint: str) -> int:
        """Scripted faults (codes, 502s, drops) not yet used for ``endpoint``."""
        name = _endpoint(endpoint)
        with self._lock:
            return self._faults.pending(name)

    def clear_faults(self) -> None:
        """Cancel scripted faults; set latency, latency_spread and error_rate back to 0."""
        with self._lock:
            self._faults.clear()
