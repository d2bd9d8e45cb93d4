"""FakeTencentChat: the fake server's Python face (set-up, fault injection, inspection,
simulated users)."""

from __future__ import annotations

import asyncio
import threading
import time
import types
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import anyio

from .._endpoints import BY_METHOD, BY_PATH, Endpoint
from .._exceptions import ValidationError
from .._usersig import generate_usersig
from ._app import ASGIApp, Call, FakeApp
from ._asgi_transport import ASGIAppTransport
from ._deliver import DEFAULT_CALLBACK_TIMEOUT, Deliverer, Delivery
from ._faults import TARGET_FIELDS, AddedLatency, FaultPlan, Target
from ._records import CallbackEvent, StoredGroupMessage, StoredMessage
from ._serve import require_uvicorn, serve
from ._state import ENDPOINTS, ROBOT_PREFIX, ChatState

if TYPE_CHECKING:
    from .._client import TencentChat

__all__ = ["FAKE_BASE_URL", "FakeTencentChat", "RateLimitSetting", "resolve_rate_limits"]

FAKE_BASE_URL = "http://fake.tencent-chat.invalid"
"""The base URL of ``fake.client()``: never resolved, requests go to the fake in-process."""

RateLimitSetting: TypeAlias = int | Mapping[str, int | None] | Literal["documented"] | None
"""``FakeTencentChat(rate_limit=...)``: see :func:`resolve_rate_limits`."""


def _endpoint(endpoint: str) -> str:
    """The path ``endpoint`` names: a path (``/v4/`` optional) or a ``TencentChat`` method."""
    if isinstance(endpoint, str):
        spec = BY_METHOD.get(endpoint)
        name = spec.path if spec else endpoint.removeprefix("/").removeprefix("v4/")
        if name in ENDPOINTS:
            return name
    raise ValidationError(f"unknown endpoint {endpoint!r}; expected one of {', '.join(ENDPOINTS)}")


def _target(
    endpoint: str | None,
    room: str | None = None,
    group: str | None = None,
    robot: str | None = None,
    user: str | None = None,
) -> Target:
    """The checked :class:`Target` of a fault method's arguments."""
    objects = {"room": room, "group": group, "robot": robot, "user": user}
    for kind, value in objects.items():
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ValidationError(f"{kind} must be a non-empty string, got {value!r}")
        if kind == "robot" and not value.startswith(ROBOT_PREFIX):
            raise ValidationError(f"robot={value!r} is not a robot id (one starts with @RBT#)")
        if kind == "user" and value.startswith(ROBOT_PREFIX):
            raise ValidationError(f"user={value!r} is a robot id: aim at it with robot=")
    if endpoint is None:
        if all(value is None for value in objects.values()):
            raise ValidationError("name an endpoint, or a room, group, robot or user, to aim at")
        return Target(None, room, group, robot, user)
    name = _endpoint(endpoint)
    for kind, value in objects.items():
        if value is not None and kind not in TARGET_FIELDS[name]:
            raise ValidationError(f"{name} requests name no {kind}: {kind}={value!r} never matches")
    return Target(name, room, group, robot, user)


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
    arrivals for the rate limit and :class:`Call` records, and the message APIs' windows
    (40 a second per group, de-duplication, a stream's 5 calls a second and 15 s idle
    end); ``wall_clock`` (default :func:`time.time`)
    gives ``MsgTime``, ``EventTime`` and a callback's ``RequestTime``; UserSig expiry uses
    the real wall clock.
    ``seed`` makes ``error_rate`` and ``latency_spread`` draws reproducible.
    ``keep_history`` caps :attr:`calls` and each endpoint's arrival history to the latest
    records (``None``: keep all), for a fake left running under load.
    Conversations: robots reply through ``sendmsg`` / ``send_group_msg``, or stream a
    one-to-one reply in pieces through ``send_stream_msg`` (stored, seen with
    :meth:`transcript` and :meth:`group_messages`); simulated users talk to the app's
    webhook (:meth:`set_callback`, :meth:`user_sends`, :meth:`user_mentions`). Close the
    fake with :meth:`aclose` (or ``async with``) once a callback was set.
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
        wall_clock: Callable[[], float] = time.time,
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
            admin=admin,
            clock=clock,
            wall_clock=wall_clock,
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
        self._deliverer = Deliverer(sdkappid=sdkappid, lock=self._lock, wall_clock=wall_clock)
        self._app.after_answer = self._after_answer
        self._deliverer.after_delivery = self._changed
        # (loop, event) of each task in wait_until: set whenever something may have
        # changed, from whichever thread's loop serves the app.
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    async def __aenter__(self) -> FakeTencentChat:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel callbacks under way and close the callback HTTP clients."""
        await self._deliverer.aclose()

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
        Without uvicorn (the ``testing`` extra), a ``ModuleNotFoundError`` naming the extra.
        """
        require_uvicorn()  # here, not on entering: the call names what is missing
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

    # --- users and ordinary groups ---

    def create_user(self, user_id: str) -> None:
        """Import a user account (no-op if imported); ValueError for an ``@RBT#`` id."""
        with self._lock:
            self._state.create_user(user_id)

    @property
    def users(self) -> list[str]:
        """Imported user accounts (not robots), in import order."""
        with self._lock:
            return self._state.users()

    def create_group(
        self,
        group_id: str,
        type: str = "Public",
        members: Sequence[str] = (),
    ) -> None:
        """Create an ordinary group (``Private``/``Work``, ``Public``, ``ChatRoom``/``Meeting``,
        ``Community``) holding ``members``; on an existing one of that type, add them.

        Users among ``members`` are imported; robots must be valid. ValueError if the id
        is malformed or a live group's, or the group exists with another type. Live
        groups (AVChatRoom) are made with :meth:`create_live_group`.
        """
        with self._lock:
            self._state.create_group(group_id, type, members)

    def add_group_members(self, group_id: str, members: Sequence[str]) -> None:
        """Add accounts to an ordinary group (users imported). KeyError if unknown."""
        with self._lock:
            self._state.messages.add_group_members(group_id, members)

    def group_members(self, group_id: str) -> list[str]:
        """An ordinary group's members, in joining order. KeyError if unknown."""
        with self._lock:
            return self._state.messages.group_members(group_id)

    def dismiss_group(self, group_id: str) -> None:
        """Remove an ordinary group and its messages; later calls get 10010."""
        with self._lock:
            self._state.dismiss_group(group_id)

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
            self._state.take_events()  # none: arranging never sends a message
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

    def transcript(self, user: str, robot: str) -> list[StoredMessage]:
        """The one-to-one messages between two accounts, both directions, oldest first.

        Each a :class:`StoredMessage` as it stands now (``text``, ``body``, ``msg_key``,
        ``msg_time``, ``random``...), with every version in ``revisions``; a copy.
        A streamed reply (``send_stream_msg``) is one message, placed by its first piece:
        ``text`` is its pieces so far, ``revisions`` one per accepted piece, ``stream``
        its state (``"open"``, ``"finished"``, ``"expired"``; ``None`` for other
        messages) and ``stream_arrivals`` the fake-clock arrival times of every call
        naming it, so ``max_in_window(m.stream_arrivals)`` is the most calls it took in
        any second. A stream idle for more than 15 s by ``clock`` reads as expired.
        """
        with self._lock:
            return self._state.transcript(user, robot)

    def group_messages(self, group_id: str) -> list[StoredGroupMessage]:
        """A group's messages in ``msg_seq`` order (a copy). KeyError if no such group."""
        with self._lock:
            return self._state.group_messages(group_id)

    def messages_snapshot(self) -> dict[str, Any]:
        """Users, ordinary groups and all messages: what ``GET /_fake/messages`` answers."""
        with self._lock:
            return self._state.messages_snapshot()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` is true, checking it after each answer the fake sends
        and each callback it delivers (in this event loop). Bound it yourself, e.g. for a
        bot's reply::

            with anyio.fail_after(5):
                await fake.wait_until(lambda: len(fake.transcript("user1", "@RBT#001")) == 2)
        """
        loop = asyncio.get_running_loop()
        while not condition():
            waiter = (loop, asyncio.Event())
            self._waiters.add(waiter)
            try:
                await waiter[1].wait()
            finally:
                self._waiters.discard(waiter)

    def _after_answer(self, events: tuple[CallbackEvent, ...]) -> None:
        if events:
            self._deliverer.schedule(events)
        self._changed()

    def _changed(self) -> None:
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for loop, event in list(self._waiters):
            if loop is here:
                event.set()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

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

    # --- simulated users and callbacks ---

    def set_callback(
        self,
        target: str | ASGIApp | None,
        *,
        token: str | None = None,
        path: str = "/",
        timeout: float = DEFAULT_CALLBACK_TIMEOUT,
        retry_on_timeout: int = 0,
    ) -> None:
        """Register the app's webhook: a URL (POSTed to over keep-alive HTTP) or an ASGI app
        (called in-process at ``path``); ``None`` removes it.

        With a ``token``, each callback carries ``Sign`` and ``RequestTime``. A callback not
        answered within ``timeout`` s (Chat's 2) fails; ``retry_on_timeout`` sends a timed-out
        one again that many times (Chat's retry is a console option, off by default).
        """
        self._deliverer.set_target(
            target, token=token, path=path, timeout=timeout, retry_on_timeout=retry_on_timeout
        )

    @property
    def callback_deliveries(self) -> list[Delivery]:
        """Every callback attempt made, in order of completion (a copy)."""
        with self._lock:
            return list(self._deliverer.deliveries)

    async def wait_deliveries(self) -> None:
        """Wait until the callbacks REST calls caused (a ``sendmsg`` to a robot) are done,
        those they cause in turn included (bound it with ``anyio.fail_after``)."""
        await self._deliverer.wait_idle()

    async def user_sends(
        self,
        user: str,
        robot: str,
        text: str,
        *,
        times: int = 1,
        delay: float = 0.0,
        request_time: int | None = None,
        platform: str = "Web",
        cloud_custom_data: str | None = None,
    ) -> list[Delivery]:
        """A user sends ``text`` to ``robot``: stored in their transcript, then delivered to
        the webhook as a signed ``Bot.OnC2CMessage`` and the answer awaited.

        ``times`` delivers the same event (same ``MsgKey``) that many times, one after the
        other; ``delay`` s pass between the message and its first delivery;
        ``request_time`` replaces ``RequestTime`` (e.g. a stale one; signed all the same).
        ``user`` is imported if new. Returns every delivery attempt. RuntimeError if no
        callback is set, ValueError if ``robot`` is not a valid robot.
        """
        _check_times(times, delay)
        if not self._deliverer.has_target:
            raise RuntimeError("no callback is set: call fake.set_callback(url_or_app) first")
        with self._lock:
            event = self._state.messages.user_message(
                user, robot, text, platform=platform, cloud_custom_data=cloud_custom_data
            )
        return await self._deliver(event, times, delay, request_time)

    async def user_mentions(
        self,
        group_id: str,
        user: str,
        robots: Sequence[str],
        text: str,
        *,
        times: int = 1,
        delay: float = 0.0,
        request_time: int | None = None,
        platform: str = "Web",
        cloud_custom_data: str | None = None,
        topic_id: str | None = None,
    ) -> list[Delivery]:
        """A user @-mentions ``robots`` in a group: ``"@{robot} "`` for each, then ``text``,
        is stored as the group's next message and a ``Bot.OnGroupMessage`` is delivered.

        The robots must be in the group (a live group's pinned robots, an ordinary group's
        members); the user joins an ordinary group if not in it. ``topic_id``: Community
        groups only. Other options as :meth:`user_sends`.
        """
        _check_times(times, delay)
        if not self._deliverer.has_target:
            raise RuntimeError("no callback is set: call fake.set_callback(url_or_app) first")
        with self._lock:
            event = self._state.messages.user_mention(
                group_id,
                user,
                robots,
                text,
                platform=platform,
                cloud_custom_data=cloud_custom_data,
                topic_id=topic_id,
            )
        return await self._deliver(event, times, delay, request_time)

    async def _deliver(
        self, event: CallbackEvent, times: int, delay: float, request_time: int | None
    ) -> list[Delivery]:
        if delay:
            await anyio.sleep(delay)
        deliveries: list[Delivery] = []
        for _ in range(times):
            deliveries += await self._deliverer.deliver(event, request_time=request_time)
        return deliveries

    # --- fault injection ---

    def fail_next(
        self,
        endpoint: str | None = None,
        code: int | None = None,
        times: int = 1,
        *,
        room: str | None = None,
        group: str | None = None,
        robot: str | None = None,
        user: str | None = None,
    ) -> None:
        """Answer the next ``times`` authenticated calls aimed at with ``code``.

        A call is aimed at when it is of ``endpoint`` (if given) and its body names every
        object given: ``room`` as its ``RoomId`` (a room or a live room), ``group`` as its
        ``GroupId``, ``robot`` (an ``@RBT#`` id) or ``user`` in an account field of that
        API (``UserID``, ``Member_Account``, ``RobotList_Account``, ``From_Account``,
        ``To_Account``...: the table is :data:`~._faults.TARGET_FIELDS`). Other calls pass
        untouched and leave the fault queued; a call takes the earliest registered fault
        aimed at it. E.g. ``fake.fail_next("add_robot_to_room", 100006, room="room-7")``,
        ``fake.fail_next(user="alice", code=20003)``.
        """
        target = _target(endpoint, room, group, robot, user)
        if code is None:
            raise ValidationError("fail_next needs the code to answer")
        with self._lock:
            self._faults.fail_next(target, code, times)

    def bad_gateway_next(
        self,
        endpoint: str | None = None,
        times: int = 1,
        *,
        room: str | None = None,
        group: str | None = None,
        robot: str | None = None,
        user: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls aimed at (as :meth:`fail_next`) with an HTTP 502
        HTML page."""
        target = _target(endpoint, room, group, robot, user)
        with self._lock:
            self._faults.bad_gateway_next(target, times)

    def drop_next(
        self,
        endpoint: str | None = None,
        times: int = 1,
        *,
        after_processing: bool = False,
        room: str | None = None,
        group: str | None = None,
        robot: str | None = None,
        user: str | None = None,
    ) -> None:
        """Close the connection of the next ``times`` calls aimed at (as :meth:`fail_next`)
        without an answer.

        With ``after_processing`` the call takes effect first (the client cannot tell).
        """
        target = _target(endpoint, room, group, robot, user)
        with self._lock:
            self._faults.drop_next(target, times, after_processing=after_processing)

    def add_latency(
        self,
        seconds: float,
        *,
        endpoint: str | None = None,
        room: str | None = None,
        group: str | None = None,
        robot: str | None = None,
        user: str | None = None,
    ) -> AddedLatency:
        """Hold back the answers to calls aimed at (as :meth:`fail_next`) by ``seconds``
        more than :attr:`latency`, until removed; each call, every time.

        Returns a handle: ``.remove()`` it, or ``with fake.add_latency(2, room="r"):``.
        Added latencies aimed at the same call add up.
        """
        target = _target(endpoint, room, group, robot, user)
        with self._lock:
            return self._faults.add_latency(target, seconds, self._remove_latency)

    def _remove_latency(self, added: AddedLatency) -> None:
        with self._lock:
            self._faults.remove_latency(added)

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

    def pending_faults(
        self,
        endpoint: str | None = None,
        *,
        room: str | None = None,
        group: str | None = None,
        robot: str | None = None,
        user: str | None = None,
    ) -> int:
        """Scripted faults (codes, 502s, drops) not yet used, of those registered with
        exactly these arguments (``pending_faults(room="r")`` does not count
        ``fail_next("add_robot_to_room", 100006, room="r")``)."""
        target = _target(endpoint, room, group, robot, user)
        with self._lock:
            return self._faults.pending(target)

    def clear_faults(self) -> None:
        """Cancel scripted faults and added latencies; set latency, latency_spread and
        error_rate back to 0."""
        with self._lock:
            self._faults.clear()


def _check_times(times: int, delay: float) -> None:
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ValueError(f"times must be a whole number >= 1: {times!r}")
    if not delay >= 0:
        raise ValueError(f"delay must be >= 0 seconds: {delay!r}")
