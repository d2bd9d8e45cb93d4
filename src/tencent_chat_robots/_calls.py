"""``Call``: one call described as data, made from a row of the endpoint table.

Every ``TencentChat`` method builds a :class:`Call` and sends it, and ``chat.bulk()``
runs a stream of them; what each method means is its row in ``_endpoints``.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

import attrs

from ._elements import Element, elements_to_json
from ._endpoints import BY_METHOD, EndpointSpec
from ._exceptions import ValidationError
from ._messages import SentGroupMessage, SentMessage, new_random
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
        return response if unwrap is None else unwrap(response, self.body)  # type: ignore[no-any-return]

    @property
    def also_paced(self) -> str | None:
        """The second rate-limit key this call is paced by (a group's budget), if any."""
        key = self.spec.also_paced
        return None if key is None else key(self.body)

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

    # -- messages: a robot's replies ---------------------------------------------------

    @classmethod
    def send_c2c_message(
        cls,
        from_account: str | None,
        to_account: str,
        body: str | Element | Sequence[Element],
        *,
        random: int | None = None,
        msg_seq: int | None = None,
        msg_lifetime: int | None = None,
        sync_other_machine: int | None = None,
        forbid_callbacks: Sequence[str] = (),
        send_control: Sequence[str] = (),
        cloud_custom_data: str | None = None,
        offline_push: Mapping[str, Any] | None = None,
    ) -> Call[SentMessage]:
        """``send_c2c_message(from_account, to_account, body, ...)``; ``random`` (the
        ``MsgRandom``) and ``msg_seq`` are numbered now when not given, so the call is
        the same every time it is made."""
        return Call(
            "send_c2c_message",
            # from_account is positional: kept when None (the admin), so keys line up.
            (
                ("from_account", from_account),
                *_given(
                    ("to_account", to_account),
                    ("body", _message(body)),
                    ("random", new_random() if random is None else random),
                    ("msg_seq", new_random() if msg_seq is None else msg_seq),
                    ("msg_lifetime", msg_lifetime),
                    ("sync_other_machine", sync_other_machine),
                    ("forbid_callbacks", forbid_callbacks),
                    ("send_control", send_control),
                    ("cloud_custom_data", cloud_custom_data),
                    ("offline_push", offline_push),
                ),
            ),
        )

    @classmethod
    def send_group_message(
        cls,
        group_id: str,
        body: str | Element | Sequence[Element],
        *,
        from_account: str | None = None,
        random: int | None = None,
        msg_priority: str | None = None,
        online_only: bool = False,
        forbid_callbacks: Sequence[str] = (),
        send_control: Sequence[str] = (),
        cloud_custom_data: str | None = None,
        offline_push: Mapping[str, Any] | None = None,
    ) -> Call[SentGroupMessage]:
        """``send_group_message(group_id, body, from_account=, ...)``; ``random`` as in
        :meth:`send_c2c_message` (the server drops a repeat within 5 minutes)."""
        return Call(
            "send_group_message",
            (
                ("group_id", group_id),
                ("body", _message(body)),
                *_given(
                    ("from_account", from_account),
                    ("random", new_random() if random is None else random),
                    ("msg_priority", msg_priority),
                    ("online_only", online_only or None),
                    ("forbid_callbacks", forbid_callbacks),
                    ("send_control", send_control),
                    ("cloud_custom_data", cloud_custom_data),
                    ("offline_push", offline_push),
                ),
            ),
        )

    @classmethod
    def modify_c2c_message(
        cls,
        from_account: str,
        to_account: str,
        msg_key: str,
        *,
        body: str | Element | Sequence[Element] | None = None,
        cloud_custom_data: str | None = None,
    ) -> Call[ActionResult]:
        """``modify_c2c_message(from_account, to_account, msg_key, body=, cloud_custom_data=)``."""
        return Call(
            "modify_c2c_message",
            (
                ("from_account", from_account),
                ("to_account", to_account),
                ("msg_key", msg_key),
                *_given(
                    ("body", None if body is None else _message(body)),
                    ("cloud_custom_data", cloud_custom_data),
                ),
            ),
        )

    @classmethod
    def modify_group_message(
        cls,
        group_id: str,
        msg_seq: int,
        *,
        body: str | Element | Sequence[Element] | None = None,
        cloud_custom_data: str | None = None,
    ) -> Call[ActionResult]:
        """``modify_group_message(group_id, msg_seq, body=, cloud_custom_data=)``."""
        return Call(
            "modify_group_message",
            (
                ("group_id", group_id),
                ("msg_seq", msg_seq),
                *_given(
                    ("body", None if body is None else _message(body)),
                    ("cloud_custom_data", cloud_custom_data),
                ),
            ),
        )

    @classmethod
    def send_stream_chunk(
        cls,
        from_account: str,
        to_account: str,
        chunk: str,
        *,
        msg_key: str | None = None,
        finish: bool = False,
    ) -> Call[str]:
        """``send_stream_chunk(from_account, to_account, chunk, msg_key=, finish=)``."""
        return Call(
            "send_stream_chunk",
            (
                ("from_account", from_account),
                ("to_account", to_account),
                ("chunk", chunk),
                *_given(("msg_key", msg_key), ("finish", finish or None)),
            ),
        )

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


# The options that are lists of words: empty is the same as not given.
_WORD_LISTS = frozenset({"forbid_callbacks", "send_control"})


def _given(*pairs: tuple[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The arguments given: ``None`` and empty word lists are left out of a call (any
    other value, an empty one included, is the model's to judge)."""
    return tuple(
        (name, value)
        for name, value in pairs
        if value is not None and not (name in _WORD_LISTS and value in ((), []))
    )


def _message(body: object) -> list[dict[str, Any]]:
    """A message in its JSON form, so that a call's key is JSON-ready."""
    return elements_to_json(body)  # type: ignore[arg-type]  # checked there


def _is_keyword(value: object, spec: EndpointSpec) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and value[0] in spec.keywords
    )
