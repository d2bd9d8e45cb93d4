"""``Call``: one call described as data, made from a row of the endpoint table.

Every ``TencentChat`` method builds a :class:`Call` and sends it, and ``chat.bulk()``
runs a stream of them; what each method means is its row in ``_endpoints``.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any, Generic, TypeVar, cast

import attrs

from ._endpoints import BY_METHOD, EndpointSpec
from ._exceptions import ValidationError
from ._models import ActionResult

__all__ = ["Call"]

T = TypeVar("T")


def _short(value: object) -> str:
    """A repr short enough for an error message, whatever the size of ``value``."""
    return reprlib.repr(value)


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
    spec: EndpointSpec = attrs.field(init=False, eq=False)
    body: object = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        # The body follows from the method and its arguments alone: a Call made by
        # hand, or by attrs.evolve, is checked like any other.
        spec = BY_METHOD.get(self.method) if isinstance(self.method, str) else None
        if spec is None:
            raise ValidationError(f"no such method: {self.method!r}")
        try:
            pairs = dict(self.arguments)
            body = spec.body(**pairs)
        except (TypeError, ValueError) as err:
            if isinstance(err, ValidationError):
                raise
            raise ValidationError(
                f"{self.method} does not take the arguments {_short(self.arguments)}"
            ) from None
        for name, value in pairs.items():
            if isinstance(value, Sequence) and not isinstance(value, (str, bytes, tuple)):
                pairs[name] = tuple(value)  # the body holds a copy, and so does the call
        object.__setattr__(self, "arguments", tuple(pairs.items()))
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "body", body)

    @property
    def endpoint(self) -> str:
        """The API's ``service/command`` path."""
        return self.spec.path

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.arguments)
        return f"Call.{self.method}({shown})"

    def key(self) -> list[Any]:
        """``[method, argument, ...]`` (lists for sequences): one call's JSON identity."""
        key: list[Any] = [self.method]
        for name, value in self.arguments:
            value = list(value) if isinstance(value, tuple) else value
            key.append([name, value] if name in self.spec.keywords else value)
        return key

    def result(self, response: Any) -> T:
        """The method's return value from the parsed answer."""
        unwrap = self.spec.result
        return response if unwrap is None else unwrap(response)  # type: ignore[no-any-return]

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

    # -- live_engine_http_srv (TUILiveKit live rooms) ----------------------------------

    @classmethod
    def add_robots_to_live_room(
        cls, room_id: str, robot_accounts: Sequence[str]
    ) -> Call[ActionResult]:
        """``add_robots_to_live_room(room_id, robot_accounts)``."""
        return Call(
            "add_robots_to_live_room", (("room_id", room_id), ("robot_accounts", robot_accounts))
        )

    @classmethod
    def remove_robots_from_live_room(
        cls, room_id: str, robot_accounts: Sequence[str]
    ) -> Call[ActionResult]:
        """``remove_robots_from_live_room(room_id, robot_accounts)``."""
        return Call(
            "remove_robots_from_live_room",
            (("room_id", room_id), ("robot_accounts", robot_accounts)),
        )

    @classmethod
    def get_live_room_robots(cls, room_id: str) -> Call[list[str]]:
        """``get_live_room_robots(room_id)``."""
        return Call("get_live_room_robots", (("room_id", room_id),))

    @classmethod
    def from_key(cls, key: object) -> Call[Any]:
        """The call whose :meth:`key` is ``key`` (read back from a journal)."""
        spec = None
        if isinstance(key, list) and key and isinstance(key[0], str):
            spec = BY_METHOD.get(key[0])
        if spec is None:
            raise ValidationError(f"not a call's key: {_short(key)}")
        method, values = spec.method, cast("list[Any]", key)[1:]
        positional = [v for v in values if not _is_keyword(v, spec)]
        keywords = [v for v in values if _is_keyword(v, spec)]
        named = dict(keywords)
        # Keywords come last, each once.
        if values[len(positional) :] != keywords or len(named) != len(keywords):
            raise ValidationError(f"not a call's key: {_short(key)}")
        factory = getattr(cls, method)
        try:
            call: Call[Any] = factory(*positional, **named)
        except TypeError:
            raise ValidationError(f"not a call's key: {_short(key)}") from None
        return call


def _is_keyword(value: object, spec: EndpointSpec) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and value[0] in spec.keywords
    )
