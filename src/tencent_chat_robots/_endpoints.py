"""The endpoint table: one typed row per documented API, from which the rest derives.

A row says everything the SDK knows of one API: the ``TencentChat`` method and
:class:`~tencent_chat_robots.Call` constructor that make it, its ``service/command``
path (also its rate-limit key and telemetry name), how its body is built from the
method's arguments, the answer's model and the method's return value, its documented
rate, its command-line name, and which answers settle a retried call. The client's
methods, ``Call``, the command line, telemetry and the fake server's routes all read
it: adding an API is a row here (and its two typed one-line shims).

Pacing: every API is paced, by default, at :data:`PACE_FRACTION` of its own documented
rate (190 for the 200/s APIs, 95 for the 100/s ones), leaving room for network jitter,
which bunches requests on the way to a server that counts arrivals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._config import require_number
from ._constants import MAX_RATE_LIMIT
from ._exceptions import ValidationError
from ._messages import (
    GROUP_KEY_PREFIX,
    ModifyC2CMessageRequest,
    ModifyGroupMessageRequest,
    SendC2CMessageRequest,
    SendC2CMessageResponse,
    SendGroupMessageRequest,
    SendGroupMessageResponse,
    SendStreamChunkRequest,
    SendStreamChunkResponse,
    SentGroupMessage,
    SentMessage,
    group_key,
)
from ._models import (
    ActionResult,
    CreateRobotRequest,
    DeleteRobotRequest,
    GetAllRobotsRequest,
    GetAllRobotsResponse,
    GetLiveRoomRobotsResponse,
    LiveGroupRobotsRequest,
    LiveRoomAddRobotsRequest,
    LiveRoomRequest,
    LiveRoomRobotsRequest,
    RoomRobotRequest,
)

__all__ = [
    "BY_METHOD",
    "BY_PATH",
    "ENDPOINTS",
    "PACE_FRACTION",
    "Endpoint",
    "EndpointSpec",
    "pace_for",
    "resolve_rates",
]

# Of each API's documented rate, what the client paces it at by default.
PACE_FRACTION = 0.95
# The documented rate of most APIs: a single ``rate_limit`` number is given in its terms.
REFERENCE_RATE = 200
# "At most 40 messages per second per group" (send_group_msg): each group's own budget.
GROUP_MESSAGE_RATE = 40


class Endpoint:
    """The ``service/command`` path of each documented API (also the rate-limit keys)."""

    CREATE_ROBOT = "openim_robot_http_svc/create_robot"
    GET_ALL_ROBOTS = "openim_robot_http_svc/get_all_robots"
    DELETE_ROBOT = "openim_robot_http_svc/delete_robot"
    ROOM_ADD_ROBOT = "room_engine_http_srv/add_robot"
    ROOM_DELETE_ROBOT = "room_engine_http_srv/delete_robot"
    LIVE_GROUP_ADD_ROBOTS = "group_open_avchatroom_http_svc/add_robots"
    LIVE_GROUP_DEL_ROBOTS = "group_open_avchatroom_http_svc/del_robots"
    LIVE_ROOM_ADD_ROBOT = "live_engine_http_srv/add_robot"
    LIVE_ROOM_DEL_ROBOT = "live_engine_http_srv/del_robot"
    LIVE_ROOM_GET_ROBOT = "live_engine_http_srv/get_robot"
    SEND_C2C_MESSAGE = "openim/sendmsg"
    SEND_GROUP_MESSAGE = "group_open_http_svc/send_group_msg"
    MODIFY_C2C_MESSAGE = "openim/modify_c2c_msg"
    MODIFY_GROUP_MESSAGE = "openim/modify_group_msg"
    SEND_STREAM_CHUNK = "openim_robot_http_svc/send_stream_msg"

    ALL: tuple[str, ...] = ()  # filled in from the table below


def _robot_accounts(response: GetAllRobotsResponse, _: object) -> list[str]:
    return response.robot_account


def _live_room_robots(response: GetLiveRoomRobotsResponse, _: object) -> list[str]:
    return response.response.robot_list_account


def _stream_key(response: SendStreamChunkResponse, _: object) -> str:
    return response.msg_key


def _group_budget(body: SendGroupMessageRequest | ModifyGroupMessageRequest) -> str:
    return group_key(body.group_id)


_MESSAGE_OPTIONS = ("forbid_callbacks", "send_control", "cloud_custom_data", "offline_push")
_SEND_C2C_KEYWORDS = (
    "random",
    "msg_seq",
    "msg_lifetime",
    "sync_other_machine",
    *_MESSAGE_OPTIONS,
)
_SEND_GROUP_KEYWORDS = ("from_account", "random", "msg_priority", "online_only", *_MESSAGE_OPTIONS)


@attrs.frozen(slots=True)
class EndpointSpec:
    """One documented API, as the SDK knows it (see the module docstring)."""

    method: str  # the TencentChat method and Call constructor
    path: str  # ``service/command``: the URL after /v4/, the rate-limit key
    body: Callable[..., object]  # the request body from the method's keyword arguments
    answer: type[Any]  # the model of a successful answer
    # The method's return value from the answer and the request body (``None``: the
    # answer itself).
    result: Callable[[Any, Any], Any] | None
    documented_rate: int  # calls per second, per the vendor's page
    cli: tuple[str, str]  # (command group, verb) on the command line
    # Codes meaning "already in the state asked for": they settle a call whose earlier
    # attempt went unanswered (it may have done the work), see _retry.
    already_done: frozenset[int] = frozenset()
    # Body fields a call's key names (optional keywords); the rest are positional.
    keywords: tuple[str, ...] = ()
    # A second rate-limit key from the body, paced beside the API's own (a group's
    # 40 messages a second): see ``_gate``.
    also_paced: Callable[[Any], str] | None = None
    # Whether an attempt that went unanswered after it may have reached the server is
    # tried again. Not for an API the server cannot tell a repeat of (a stream's piece
    # would be shown twice): see _retry.
    resend_unanswered: bool = True

    @property
    def default_pace(self) -> float:
        """The calls per sliding second the client sends by default."""
        return self.documented_rate * PACE_FRACTION


ENDPOINTS: tuple[EndpointSpec, ...] = (
    EndpointSpec(
        "create_robot",
        Endpoint.CREATE_ROBOT,
        CreateRobotRequest,
        ActionResult,
        None,
        200,
        ("robots", "create"),
        keywords=("nick", "face_url", "self_signature"),
    ),
    EndpointSpec(
        "get_all_robots",
        Endpoint.GET_ALL_ROBOTS,
        GetAllRobotsRequest,
        GetAllRobotsResponse,
        _robot_accounts,
        200,
        ("robots", "list"),
    ),
    EndpointSpec(
        "delete_robot",
        Endpoint.DELETE_ROBOT,
        DeleteRobotRequest,
        ActionResult,
        None,
        200,
        ("robots", "delete"),
    ),
    EndpointSpec(
        "add_robot_to_room",
        Endpoint.ROOM_ADD_ROBOT,
        RoomRobotRequest,
        ActionResult,
        None,
        200,
        ("room", "add"),
    ),
    EndpointSpec(
        "remove_robot_from_room",
        Endpoint.ROOM_DELETE_ROBOT,
        RoomRobotRequest,
        ActionResult,
        None,
        200,
        ("room", "remove"),
        already_done=frozenset({100005}),  # not a member (any more)
    ),
    EndpointSpec(
        "add_robots_to_live_group",
        Endpoint.LIVE_GROUP_ADD_ROBOTS,
        LiveGroupRobotsRequest,
        ActionResult,
        None,
        200,
        ("group", "add"),
    ),
    EndpointSpec(
        "remove_robots_from_live_group",
        Endpoint.LIVE_GROUP_DEL_ROBOTS,
        LiveGroupRobotsRequest,
        ActionResult,
        None,
        200,
        ("group", "remove"),
    ),
    EndpointSpec(
        "add_robots_to_live_room",
        Endpoint.LIVE_ROOM_ADD_ROBOT,
        LiveRoomAddRobotsRequest,
        ActionResult,
        None,
        100,
        ("live-room", "add"),
    ),
    EndpointSpec(
        "remove_robots_from_live_room",
        Endpoint.LIVE_ROOM_DEL_ROBOT,
        LiveRoomRobotsRequest,
        ActionResult,
        None,
        100,
        ("live-room", "remove"),
    ),
    EndpointSpec(
        "get_live_room_robots",
        Endpoint.LIVE_ROOM_GET_ROBOT,
        LiveRoomRequest,
        GetLiveRoomRobotsResponse,
        _live_room_robots,
        100,
        ("live-room", "list"),
    ),
    EndpointSpec(
        "send_c2c_message",
        Endpoint.SEND_C2C_MESSAGE,
        SendC2CMessageRequest,
        SendC2CMessageResponse,
        SentMessage.of,
        200,
        ("message", "send"),
        keywords=_SEND_C2C_KEYWORDS,
    ),
    EndpointSpec(
        "send_group_message",
        Endpoint.SEND_GROUP_MESSAGE,
        SendGroupMessageRequest,
        SendGroupMessageResponse,
        SentGroupMessage.of,
        200,
        ("group-message", "send"),
        keywords=_SEND_GROUP_KEYWORDS,
        also_paced=_group_budget,
    ),
    EndpointSpec(
        "modify_c2c_message",
        Endpoint.MODIFY_C2C_MESSAGE,
        ModifyC2CMessageRequest,
        ActionResult,
        None,
        200,
        ("message", "modify"),
        keywords=("body", "cloud_custom_data"),
    ),
    EndpointSpec(
        "modify_group_message",
        Endpoint.MODIFY_GROUP_MESSAGE,
        ModifyGroupMessageRequest,
        ActionResult,
        None,
        200,
        ("group-message", "modify"),
        keywords=("body", "cloud_custom_data"),
        also_paced=_group_budget,
    ),
    EndpointSpec(
        "send_stream_chunk",
        Endpoint.SEND_STREAM_CHUNK,
        SendStreamChunkRequest,
        SendStreamChunkResponse,
        _stream_key,
        200,
        ("message", "stream"),
        keywords=("msg_key", "finish"),
        resend_unanswered=False,
    ),
)
"""Every documented API, one row each: what a method sends, its rate, how it is retried."""

Endpoint.ALL = tuple(spec.path for spec in ENDPOINTS)
BY_METHOD: Mapping[str, EndpointSpec] = {spec.method: spec for spec in ENDPOINTS}
BY_PATH: Mapping[str, EndpointSpec] = {spec.path: spec for spec in ENDPOINTS}


def _path_of(name: object, *, documented_only: bool) -> str:
    """The path an API is named by in ``rates``: its method name or its path."""
    if isinstance(name, str):
        spec = BY_METHOD.get(name) or BY_PATH.get(name)
        if spec is not None:
            return spec.path
        if "/" in name and not documented_only:  # a key of the user's own limiter
            return name
    raise ValidationError(
        f"rates: {name!r} names no API: use a method name such as 'add_robot_to_room'"
        " or a path such as 'room_engine_http_srv/add_robot'"
    )


def resolve_rates(
    rates: Mapping[str, float] | None, *, documented_only: bool = False
) -> dict[str, float]:
    """``rates`` keyed by path (method names resolved), each rate checked.

    ``documented_only``: every key must name an API of the table (a client's own
    ``rate_limit``), not a key of the user's own.
    """
    if rates is None:
        return {}
    if not isinstance(rates, Mapping):
        raise ValidationError(f"rates must be a mapping of API to calls/s, got {rates!r}")
    resolved: dict[str, float] = {}
    for name, rate in rates.items():
        path = _path_of(name, documented_only=documented_only)
        if path in resolved:
            raise ValidationError(f"rates: {name!r} names {path}, which is named twice")
        resolved[path] = require_number(f"rates[{name!r}]", rate, minimum=1, maximum=MAX_RATE_LIMIT)
    return resolved


def pace_for(key: str, rate: float, rates: Mapping[str, float]) -> float:
    """The calls per sliding second a limiter allows ``key`` (a path, or a method name).

    A key named in ``rates`` (resolved by :func:`resolve_rates`) gets its rate as given:
    naming an API is how a raised Tencent quota, which is per API, is used. Any other
    key gets ``rate``, which is given in terms of the 200/s APIs: an API documented at
    another rate gets the same share of its own (``rate=190`` paces a 100/s API at 95,
    and a group's message budget, ``group_messages/<GroupId>``, documented at 40 a
    second, at 38), and no API is paced above its documented rate unless it is named.
    """
    spec = BY_PATH.get(key) or BY_METHOD.get(key)
    named = rates.get(key if spec is None else spec.path)
    if named is not None:
        return named
    if math.isinf(rate):
        return rate
    if spec is not None:
        documented = spec.documented_rate
    elif key.startswith(GROUP_KEY_PREFIX):  # one group's messages: 40 a second (2.2)
        documented = GROUP_MESSAGE_RATE
    else:
        return rate
    return min(rate * documented / REFERENCE_RATE, documented)
