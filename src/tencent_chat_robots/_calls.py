"""``Call``: one call described as data, the single table from method to endpoint.

Every ``TencentChat`` method builds a :class:`Call` and sends it, and ``chat.bulk()``
runs a stream of them, so what a method means is written once, here.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import attrs

from ._exceptions import ValidationError
from ._models import (
    ActionResult,
    CreateRobotRequest,
    DeleteRobotRequest,
    GetAllRobotsRequest,
    GetAllRobotsResponse,
    LiveGroupRobotsRequest,
    RoomRobotRequest,
)

__all__ = ["METHODS", "Call", "Endpoint"]

T = TypeVar("T")


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


def _short(value: object) -> str:
    """A repr short enough for an error message, whatever the size of ``value``."""
    return reprlib.repr(value)


def _same(value: Any) -> Any:
    return value


def _robot_accounts(response: GetAllRobotsResponse) -> list[str]:
    return response.robot_account


def _room_body(room_id: str, robot_account: str) -> RoomRobotRequest:
    return RoomRobotRequest(room_id, robot_account)


def _group_body(group_id: str, robot_accounts: Sequence[str]) -> LiveGroupRobotsRequest:
    LiveGroupRobotsRequest(group_id, robot_accounts)  # checked as given: a str is refused
    # A copy: the caller changing the list later does not change the call.
    return LiveGroupRobotsRequest(group_id, tuple(robot_accounts))


# method -> (endpoint, the body from the method's arguments, answer type, return value)
_SPECS: dict[str, tuple[str, Callable[..., Any], type[Any], Callable[[Any], Any]]] = {
    "create_robot": (Endpoint.CREATE_ROBOT, CreateRobotRequest, ActionResult, _same),
    "get_all_robots": (
        Endpoint.GET_ALL_ROBOTS,
        GetAllRobotsRequest,
        GetAllRobotsResponse,
        _robot_accounts,
    ),
    "delete_robot": (Endpoint.DELETE_ROBOT, DeleteRobotRequest, ActionResult, _same),
    "add_robot_to_room": (Endpoint.ROOM_ADD_ROBOT, _room_body, ActionResult, _same),
    "remove_robot_from_room": (Endpoint.ROOM_DELETE_ROBOT, _room_body, ActionResult, _same),
    "add_robots_to_live_group": (Endpoint.LIVE_GROUP_ADD_ROBOTS, _group_body, ActionResult, _same),
    "remove_robots_from_live_group": (
        Endpoint.LIVE_GROUP_DEL_ROBOTS,
        _group_body,
        ActionResult,
        _same,
    ),
}
_PROFILE = ("nick", "face_url", "self_signature")  # create_robot's optional keywords
# Each endpoint's method on TencentChat (also the name of its calls' spans).
METHODS = {spec[0]: method for method, spec in _SPECS.items()}


@attrs.frozen(slots=True, repr=False)
class Call(Generic[T]):
    """One call to make: ``Call.add_robot_to_room("room-1", "@RBT#001")``.

    It describes what ``chat.add_robot_to_room("room-1", "@RBT#001")`` does; ``await
    chat.call(c)`` makes it, and ``chat.bulk(calls)`` makes a stream of them. A call is
    checked when it is built, by the same rules as the method's: a rule it breaks
    raises :class:`ValidationError` then, before anything is sent. ``method`` and
    ``arguments`` (the method's keyword arguments, as pairs) say what it is;
    :meth:`key` is a JSON-ready form of both, for journals.
    """

    method: str
    arguments: tuple[tuple[str, Any], ...] = ()
    endpoint: str = attrs.field(init=False, eq=False)
    body: object = attrs.field(init=False, eq=False)
    result_type: type[Any] = attrs.field(init=False, eq=False)
    _unwrap: Callable[[Any], T] = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        # The endpoint, body and answer follow from the method and its arguments alone:
        # a Call made by hand, or by attrs.evolve, is checked like any other.
        spec = _SPECS.get(self.method) if isinstance(self.method, str) else None
        if spec is None:
            raise ValidationError(f"no such method: {self.method!r}")
        endpoint, make_body, result_type, unwrap = spec
        try:
            pairs = dict(self.arguments)
            body = make_body(**pairs)
        except (TypeError, ValueError) as err:
            if isinstance(err, ValidationError):
                raise
            raise ValidationError(
                f"{self.method} does not take the arguments {_short(self.arguments)}"
            ) from None
        if isinstance(body, LiveGroupRobotsRequest):
            pairs["robot_accounts"] = body.member_account
        object.__setattr__(self, "arguments", tuple(pairs.items()))
        object.__setattr__(self, "endpoint", endpoint)
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "result_type", result_type)
        object.__setattr__(self, "_unwrap", unwrap)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.arguments)
        return f"Call.{self.method}({shown})"

    def key(self) -> list[Any]:
        """``[method, argument, ...]`` (lists for sequences): one call's JSON identity."""
        key: list[Any] = [self.method]
        for name, value in self.arguments:
            value = list(value) if isinstance(value, tuple) else value
            key.append([name, value] if name in _PROFILE else value)
        return key

    def result(self, response: Any) -> T:
        """The method's return value from the parsed answer."""
        return self._unwrap(response)

    # -- openim_robot_http_svc -------------------------------------------------------

    @classmethod
    def create_robot(
        cls,
        user_id: str,
        *,
        nick: str | None = None,
        face_url: str | None = None,
        self_signature: str | None = None,
    ) -> Call[ActionResult]:
        """``create_robot(user_id, nick=, face_url=, self_signature=)``."""
        profile = (("nick", nick), ("face_url", face_url), ("self_signature", self_signature))
        given = ((k, v) for k, v in profile if v is not None)
        return Call("create_robot", (("user_id", user_id), *given))

    @classmethod
    def get_all_robots(cls) -> Call[list[str]]:
        """``get_all_robots()``."""
        return Call("get_all_robots")

    @classmethod
    def delete_robot(cls, robot_account: str) -> Call[ActionResult]:
        """``delete_robot(robot_account)``."""
        return Call("delete_robot", (("robot_account", robot_account),))

    # -- room_engine_http_srv ----------------------------------------------------------

    @classmethod
    def add_robot_to_room(cls, room_id: str, robot_account: str) -> Call[ActionResult]:
        """``add_robot_to_room(room_id, robot_account)``."""
        return Call("add_robot_to_room", (("room_id", room_id), ("robot_account", robot_account)))

    @classmethod
    def remove_robot_from_room(cls, room_id: str, robot_account: str) -> Call[ActionResult]:
        """``remove_robot_from_room(room_id, robot_account)``."""
        return Call(
            "remove_robot_from_room", (("room_id", room_id), ("robot_account", robot_account))
        )

    # -- group_open_avchatroom_http_svc ----------------------------------------------

    @classmethod
    def add_robots_to_live_group(
        cls, group_id: str, robot_accounts: Sequence[str]
    ) -> Call[ActionResult]:
        """``add_robots_to_live_group(group_id, robot_accounts)``."""
        return Call(
            "add_robots_to_live_group",
            (("group_id", group_id), ("robot_accounts", robot_accounts)),
        )

    @classmethod
    def remove_robots_from_live_group(
        cls, group_id: str, robot_accounts: Sequence[str]
    ) -> Call[ActionResult]:
        """``remove_robots_from_live_group(group_id, robot_accounts)``."""
        return Call(
            "remove_robots_from_live_group",
            (("group_id", group_id), ("robot_accounts", robot_accounts)),
        )

    @classmethod
    def from_key(cls, key: object) -> Call[Any]:
        """The call whose :meth:`key` is ``key`` (read back from a journal)."""
        if not isinstance(key, list) or not key or not isinstance(key[0], str):
            raise ValidationError(f"not a call's key: {_short(key)}")
        if key[0] not in _SPECS:
            raise ValidationError(f"not a call's key: {_short(key)}")
        method, *values = key
        if method == "create_robot":
            if not 1 <= len(values) <= 4 or not all(
                isinstance(v, list) and len(v) == 2 and v[0] in _PROFILE for v in values[1:]
            ):
                raise ValidationError(f"not a call's key: {_short(key)}")
            return cls.create_robot(values[0], **dict(values[1:]))
        factory: Callable[..., Call[Any]] = getattr(cls, method)
        try:
            return factory(*values)
        except TypeError:
            raise ValidationError(f"not a call's key: {_short(key)}") from None
