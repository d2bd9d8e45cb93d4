"""``TencentChat``: the public client, one thin coroutine per documented endpoint."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from types import TracebackType

import httpx

from ._auth import UserSigProvider
from ._base_client import RequestSender
from ._constants import (
    DEFAULT_ADMIN,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RATE_LIMIT,
    DEFAULT_TIMEOUT,
    ENV_ADMIN,
    ENV_BASE_URL,
    ENV_REGION,
    ENV_SDKAPPID,
    ENV_SECRET_KEY,
)
from ._exceptions import ValidationError
from ._limiter import Limiter, RateLimiter
from ._models import (
    ActionResult,
    AttemptRecord,
    CreateRobotRequest,
    DeleteRobotRequest,
    GetAllRobotsRequest,
    GetAllRobotsResponse,
    LiveGroupRobotsRequest,
    RoomRobotRequest,
)
from ._regions import Region
from ._transport import AiohttpTransport, HttpxTransport, Transport

__all__ = ["Endpoint", "TencentChat"]


class Endpoint:
    """The ``service/command`` path of each documented API (also the rate-limit keys)."""

    CREATE_ROBOT = "openim_robot_http_svc/create_robot"
    GET_ALL_ROBOTS = "openim_robot_http_svc/get_all_robots"
    DELETE_ROBOT = "openim_robot_http_svc/delete_robot"
    ROOM_ADD_ROBOT = "room_engine_http_srv/add_robot"
    ROOM_DELETE_ROBOT = "room_engine_http_srv/delete_robot"
    LIVE_GROUP_ADD_ROBOTS = "group_open_avchatroom_http_svc/add_robots"
    LIVE_GROUP_DEL_ROBOTS = "group_open_avchatroom_http_svc/del_robots"

    ALL = (
        CREATE_ROBOT,
        GET_ALL_ROBOTS,
        DELETE_ROBOT,
        ROOM_ADD_ROBOT,
        ROOM_DELETE_ROBOT,
        LIVE_GROUP_ADD_ROBOTS,
        LIVE_GROUP_DEL_ROBOTS,
    )


def _config_error(message: str) -> ValidationError:
    return ValidationError(message)


def _resolve_sdkappid(value: int | str | None) -> int:
    raw = value if value is not None else os.environ.get(ENV_SDKAPPID)
    if raw is None or raw == "":
        raise _config_error(f"sdkappid is required: pass sdkappid= or set {ENV_SDKAPPID}")
    if isinstance(raw, bool):
        raise _config_error("sdkappid must be an integer")
    try:
        sdkappid = int(raw)
    except (TypeError, ValueError):
        raise _config_error(f"sdkappid must be an integer, got {raw!r}") from None
    if sdkappid <= 0:
        raise _config_error(f"sdkappid must be positive, got {sdkappid}")
    return sdkappid


class TencentChat:
    """Async client for the chatbot REST APIs of Tencent Cloud Chat.

    Credentials and region fall back to ``TENCENT_CHAT_SDKAPPID``,
    ``TENCENT_CHAT_SECRET_KEY``, ``TENCENT_CHAT_ADMIN`` and ``TENCENT_CHAT_REGION``.
    Give ``secret_key`` (the client signs and renews the admin UserSig) or a fixed
    ``usersig``. ``base_url`` overrides the region (a proxy, or the fake server).

    Each endpoint is paced to ``rate_limit`` calls in any sliding second (190 by default,
    under the documented 200 to absorb network jitter; ``None`` turns pacing off);
    ``limiter`` replaces the built-in limiter, e.g. with one shared between processes.
    Internal errors, dropped connections and time-outs are retried ``max_retries``
    times. ``http_client`` sends through your own ``httpx.AsyncClient`` (never closed
    by the SDK); by default a pooled aiohttp session is used. ``max_in_flight`` bounds
    one endpoint's requests on the wire at once. ``on_attempt`` is called with an
    :class:`AttemptRecord` after every try (for metrics: latency, retries).

    Use it as ``async with TencentChat(...) as chat:`` or call :meth:`aclose`.
    """

    def __init__(
        self,
        sdkappid: int | str | None = None,
        secret_key: str | None = None,
        *,
        admin: str | None = None,
        usersig: str | None = None,
        region: Region | str | None = None,
        base_url: str | None = None,
        rate_limit: float | None = DEFAULT_RATE_LIMIT,
        limiter: Limiter | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
        transport: Transport | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        on_attempt: Callable[[AttemptRecord], object] | None = None,
    ) -> None:
        self.sdkappid = _resolve_sdkappid(sdkappid)
        self.admin = admin or os.environ.get(ENV_ADMIN) or DEFAULT_ADMIN
        if usersig is None:
            secret_key = secret_key or os.environ.get(ENV_SECRET_KEY) or None
            if secret_key is None:
                raise _config_error(
                    f"a secret key is required: pass secret_key= (or set {ENV_SECRET_KEY}),"
                    " or pass a ready usersig="
                )
        elif secret_key is not None:
            raise _config_error("pass secret_key= or usersig=, not both")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise _config_error(f"max_retries must be a whole number >= 0, got {max_retries!r}")
        if not timeout > 0:
            raise _config_error(f"timeout must be positive, got {timeout!r}")
        if max_in_flight < 1:
            raise _config_error(f"max_in_flight must be at least 1, got {max_in_flight!r}")
        if http_client is not None and transport is not None:
            raise _config_error("pass http_client= or transport=, not both")

        base_url = base_url or os.environ.get(ENV_BASE_URL) or None
        if base_url is None:
            try:
                self.region: Region | None = Region.parse(
                    region or os.environ.get(ENV_REGION) or Region.CHINA
                )
            except ValueError as err:
                raise _config_error(str(err)) from None
            base_url = self.region.base_url
        else:
            self.region = None
        self.base_url = base_url.rstrip("/")

        if limiter is None and rate_limit is not None:
            try:
                limiter = RateLimiter(rate_limit)
            except ValueError as err:
                raise _config_error(f"rate_limit: {err}") from None
        self.rate_limit = limiter.rate if isinstance(limiter, RateLimiter) else None
        self.limiter = limiter

        if transport is None:
            if http_client is not None:
                transport = HttpxTransport(http_client, owns_client=False)
            else:
                transport = AiohttpTransport()
            self._owns_transport = True
        else:
            self._owns_transport = False
        self._transport = transport
        self._sender = RequestSender(
            base_url=self.base_url,
            sdkappid=self.sdkappid,
            admin=self.admin,
            usersig=UserSigProvider(
                sdkappid=self.sdkappid, admin=self.admin, secret_key=secret_key, usersig=usersig
            ),
            transport=transport,
            limiter=limiter,
            max_retries=max_retries,
            timeout=timeout,
            max_in_flight=max_in_flight,
            on_attempt=on_attempt,
        )

    def __repr__(self) -> str:
        return (
            f"TencentChat(sdkappid={self.sdkappid!r}, admin={self.admin!r}, "
            f"base_url={self.base_url!r}, limiter={self.limiter!r})"
        )

    async def __aenter__(self) -> TencentChat:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections the client opened (not a client you passed in)."""
        if self._owns_transport:
            await self._transport.aclose()

    # -- openim_robot_http_svc -------------------------------------------------------

    async def create_robot(
        self,
        user_id: str,
        *,
        nick: str | None = None,
        face_url: str | None = None,
        self_signature: str | None = None,
    ) -> ActionResult:
        """Create a chatbot account (idempotent by ``user_id``, which starts with ``@RBT#``)."""
        body = CreateRobotRequest(
            user_id, nick=nick, face_url=face_url, self_signature=self_signature
        )
        return await self._sender.request(Endpoint.CREATE_ROBOT, body, ActionResult)

    async def get_all_robots(self) -> list[str]:
        """The UserIDs of every valid chatbot account of the app."""
        response = await self._sender.request(
            Endpoint.GET_ALL_ROBOTS, GetAllRobotsRequest(), GetAllRobotsResponse
        )
        return response.robot_account

    async def delete_robot(self, robot_account: str) -> ActionResult:
        """Mark a chatbot account invalid (its UserID stays taken)."""
        body = DeleteRobotRequest(robot_account)
        return await self._sender.request(Endpoint.DELETE_ROBOT, body, ActionResult)

    # -- room_engine_http_srv ----------------------------------------------------------

    async def add_robot_to_room(self, room_id: str, robot_account: str) -> ActionResult:
        """Add a robot to a room (``room_engine_http_srv/add_robot``)."""
        body = RoomRobotRequest(room_id, robot_account)
        return await self._sender.request(Endpoint.ROOM_ADD_ROBOT, body, ActionResult)

    async def remove_robot_from_room(self, room_id: str, robot_account: str) -> ActionResult:
        """Take a robot out of a room (``room_engine_http_srv/delete_robot``)."""
        body = RoomRobotRequest(room_id, robot_account)
        return await self._sender.request(Endpoint.ROOM_DELETE_ROBOT, body, ActionResult)

    # -- group_open_avchatroom_http_svc ----------------------------------------------

    async def add_robots_to_live_group(
        self, group_id: str, robot_accounts: Sequence[str]
    ) -> ActionResult:
        """Pin robots to a live-streaming group's online member list (AVChatRoom only)."""
        body = LiveGroupRobotsRequest(group_id, robot_accounts)
        return await self._sender.request(Endpoint.LIVE_GROUP_ADD_ROBOTS, body, ActionResult)

    async def remove_robots_from_live_group(
        self, group_id: str, robot_accounts: Sequence[str]
    ) -> ActionResult:
        """Take robots off a live-streaming group's online member list."""
        body = LiveGroupRobotsRequest(group_id, robot_accounts)
        return await self._sender.request(Endpoint.LIVE_GROUP_DEL_ROBOTS, body, ActionResult)
