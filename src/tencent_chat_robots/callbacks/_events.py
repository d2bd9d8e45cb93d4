"""The robot events, parsed strictly from a callback's body (robot-conversation.md §1).

Required (a missing or empty one refuses the callback with 400), because the
de-duplication key or the loop guard needs them:

- ``Bot.OnC2CMessage``: ``From_Account``, ``To_Account``, ``MsgKey``;
- ``Bot.OnGroupMessage``: ``GroupId``, ``From_Account``, ``MsgSeq``, ``AtRobots_Account``
  (at least one robot, none empty: the event fires because robots were mentioned, so
  an empty list is a malformed event, not one to acknowledge and hand to a handler);
- ``Chatbot.OnC2CSignalMessage``: ``From_Account``, ``To_Account``, ``MsgKey``.

Every other documented field is optional (``None``, or ``""`` for ``CloudCustomData``
and ``Data``, when absent), but refused when present with the wrong JSON type: a string
where a string is documented, an integer (not a bool, not a float) where an integer is.
Fields the page does not list are kept in ``.raw`` only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs

from .._elements import CustomElem, OtherElem, TextElem, elements_from_json, joined_text

__all__ = [
    "C2C",
    "GROUP",
    "SIGNAL",
    "BadEvent",
    "C2CMessage",
    "Event",
    "GroupMention",
    "SignalMessage",
    "UnknownEvent",
    "dedup_key",
    "is_loop",
    "parse_event",
]

C2C = "Bot.OnC2CMessage"
GROUP = "Bot.OnGroupMessage"
SIGNAL = "Chatbot.OnC2CSignalMessage"
ROBOT_PREFIX = "@RBT#"

Elements: TypeAlias = "tuple[TextElem | CustomElem | OtherElem, ...]"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
# Up to the year 9999 (what datetime holds); a time past it is refused, not a crash.
_MAX_SECONDS = 253_402_300_799
_MAX_INT = 2**64 - 1  # sequences and randoms are uint32 (uint64 leaves room for groups)
_LONG_KEY = 128  # a longer natural key is hashed: a store holds 100,000 of them


class BadEvent(ValueError):
    """The body is not the documented event: the message is the short reason, and
    ``reason`` the counted one (``body``, ``command`` or ``event``)."""

    def __init__(self, message: str, reason: str = "event") -> None:
        super().__init__(message)
        self.reason = reason


@attrs.frozen(slots=True)
class C2CMessage:
    """``Bot.OnC2CMessage``: a one-to-one message to a robot."""

    sender: str  # From_Account
    robot: str  # To_Account
    msg_key: str
    msg_seq: int | None
    msg_random: int | None
    msg_time: dt.datetime | None
    msg_id: str | None
    online_only: bool
    send_msg_result: int | None
    error_info: str | None
    cloud_custom_data: str
    event_time: dt.datetime | None
    elements: Elements
    text: str
    client_ip: str | None  # the query's ClientIP
    opt_platform: str | None  # the query's OptPlatform
    raw: Mapping[str, Any] = attrs.field(eq=False, repr=False)


@attrs.frozen(slots=True)
class GroupMention:
    """``Bot.OnGroupMessage``: one or more robots @-mentioned in a group."""

    group_id: str
    group_type: str | None  # Type
    sender: str  # From_Account
    operator: str | None  # Operator_Account
    random: int | None
    msg_seq: int
    msg_time: dt.datetime | None
    online_only: bool
    robots: tuple[str, ...]  # AtRobots_Account
    cloud_custom_data: str
    topic_id: str | None
    event_time: dt.datetime | None
    elements: Elements
    text: str
    client_ip: str | None
    opt_platform: str | None
    raw: Mapping[str, Any] = attrs.field(eq=False, repr=False)


@attrs.frozen(slots=True)
class SignalMessage:
    """``Chatbot.OnC2CSignalMessage``: a pass-through request; the handler returns RspData."""

    sender: str  # From_Account
    robot: str  # To_Account
    msg_key: str
    msg_seq: int | None
    msg_random: int | None
    event_time: dt.datetime | None
    data: str  # Data, a JSON string as the client sent it
    client_ip: str | None
    opt_platform: str | None
    raw: Mapping[str, Any] = attrs.field(eq=False, repr=False)


@attrs.frozen(slots=True)
class UnknownEvent:
    """Any other ``CallbackCommand``, verified but not parsed further."""

    command: str
    raw: Mapping[str, Any] = attrs.field(eq=False, repr=False)


Event: TypeAlias = "C2CMessage | GroupMention | SignalMessage | UnknownEvent"
"""Any event a handler may be given."""


class _Fields:
    """Typed reads of one body's fields, each refusal naming the field."""

    __slots__ = ("body",)

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body

    def text(self, name: str) -> str | None:
        value = self.body.get(name)
        if value is not None and not isinstance(value, str):
            raise BadEvent(f"{name} is not a string")
        return value

    def required_text(self, name: str) -> str:
        value = self.text(name)
        if not value:
            raise BadEvent(f"{name} is missing")
        return value

    def integer(self, name: str) -> int | None:
        value = self.body.get(name)
        if value is None:
            return None
        # bool is an int to Python, not to JSON's documented "Integer".
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadEvent(f"{name} is not an integer")
        if not 0 <= value <= _MAX_INT:
            raise BadEvent(f"{name} is out of range")
        return value

    def required_integer(self, name: str) -> int:
        value = self.integer(name)
        if value is None:
            raise BadEvent(f"{name} is missing")
        return value

    def time(self, name: str, *, per_second: int) -> dt.datetime | None:
        value = self.integer(name)
        if value is None:
            return None
        if value > _MAX_SECONDS * per_second:
            raise BadEvent(f"{name} is out of range")
        return _EPOCH + dt.timedelta(milliseconds=value * 1000 // per_second)

    def required_texts(self, name: str) -> tuple[str, ...]:
        value = self.body.get(name)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise BadEvent(f"{name} is not an array of strings")
        if not value or not all(value):
            raise BadEvent(f"{name} is empty or names an empty account")
        return tuple(value)

    def elements(self) -> Elements:
        if "MsgBody" not in self.body:
            return ()
        try:
            return elements_from_json(self.body["MsgBody"])
        except ValueError as err:
            raise BadEvent(str(err)) from None


def parse_event(command: str, body: Mapping[str, Any], query: Mapping[str, str]) -> Event:
    """The event ``body`` describes; :class:`BadEvent` if it breaks the documented types."""
    fields = _Fields(body)
    client_ip, opt_platform = _query_text(query, "ClientIP"), _query_text(query, "OptPlatform")
    if command == C2C:
        elements = fields.elements()
        return C2CMessage(
            sender=fields.required_text("From_Account"),
            robot=fields.required_text("To_Account"),
            msg_key=fields.required_text("MsgKey"),
            msg_seq=fields.integer("MsgSeq"),
            msg_random=fields.integer("MsgRandom"),
            msg_time=fields.time("MsgTime", per_second=1),
            msg_id=fields.text("MsgId"),
            online_only=bool(fields.integer("OnlineOnlyFlag")),
            send_msg_result=fields.integer("SendMsgResult"),
            error_info=fields.text("ErrorInfo"),
            cloud_custom_data=fields.text("CloudCustomData") or "",
            event_time=fields.time("EventTime", per_second=1000),
            elements=elements,
            text=joined_text(elements),
            client_ip=client_ip,
            opt_platform=opt_platform,
            raw=body,
        )
    if command == GROUP:
        elements = fields.elements()
        return GroupMention(
            group_id=fields.required_text("GroupId"),
            group_type=fields.text("Type"),
            sender=fields.required_text("From_Account"),
            operator=fields.text("Operator_Account"),
            random=fields.integer("Random"),
            msg_seq=fields.required_integer("MsgSeq"),
            msg_time=fields.time("MsgTime", per_second=1),
            online_only=bool(fields.integer("OnlineOnlyFlag")),
            robots=fields.required_texts("AtRobots_Account"),
            cloud_custom_data=fields.text("CloudCustomData") or "",
            topic_id=fields.text("TopicId"),
            event_time=fields.time("EventTime", per_second=1000),
            elements=elements,
            text=joined_text(elements),
            client_ip=client_ip,
            opt_platform=opt_platform,
            raw=body,
        )
    if command == SIGNAL:
        return SignalMessage(
            sender=fields.required_text("From_Account"),
            robot=fields.required_text("To_Account"),
            msg_key=fields.required_text("MsgKey"),
            msg_seq=fields.integer("MsgSeq"),
            msg_random=fields.integer("MsgRandom"),
            event_time=fields.time("EventTime", per_second=1000),
            data=fields.text("Data") or "",
            client_ip=client_ip,
            opt_platform=opt_platform,
            raw=body,
        )
    return UnknownEvent(command, body)


def _query_text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    return value if isinstance(value, str) else None


def is_loop(event: Event) -> bool:
    """Whether a robot sent ``event`` (the docs: ignore senders starting ``@RBT#``)."""
    if isinstance(event, (C2CMessage, SignalMessage)):
        return event.sender.startswith(ROBOT_PREFIX) or event.sender == event.robot
    if isinstance(event, GroupMention):
        return event.sender.startswith(ROBOT_PREFIX) or event.sender in event.robots
    return False


def dedup_key(sdkappid: int, event: Event) -> str | None:
    """The key under which ``event`` is handled once, or ``None`` (unknown events)."""
    if isinstance(event, C2CMessage):
        natural = f"c2c:{event.msg_key}"
    elif isinstance(event, SignalMessage):
        natural = f"signal:{event.msg_key}"
    elif isinstance(event, GroupMention):
        # The integers last, so a GroupId holding ':' cannot make two keys meet.
        random = "" if event.random is None else event.random
        natural = f"group:{event.group_id}:{event.msg_seq}:{random}"
    else:
        return None
    if len(natural) > _LONG_KEY or not natural.isprintable():
        kind = natural.partition(":")[0]
        natural = f"{kind}#{hashlib.sha256(natural.encode()).hexdigest()}"
    return f"{sdkappid}:{natural}"
