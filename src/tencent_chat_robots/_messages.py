"""Request bodies and results of the message APIs a robot replies through.

``openim/sendmsg`` and ``group_open_http_svc/send_group_msg`` send as an account (the
robot), ``openim/modify_c2c_msg`` and ``openim/modify_group_msg`` replace a message sent
before, ``openim_robot_http_svc/send_stream_msg`` sends a robot's one-to-one reply in
pieces. The rules checked before sending are the pages' (robot-conversation.md, 2.1 to
2.4); where a page states no rule, none is checked, except:

- A stream's piece (``Chunk``) may be empty only on the call that finishes the stream
  (an empty piece that does not finish would spend one of the stream's five calls a
  second on nothing, and whether the server takes one is not documented), and a piece,
  like a stream's whole text, is at most 12 KB as a message's JSON: a streamed reply is
  a message, and the usage-limits page bounds a message at 12 KB (the 128 KB of the
  newer stream API is another API's).

The documented rules:

- ``MsgRandom`` / ``Random`` (uint32, required) and a one-to-one message's ``MsgSeq``
  are given when the call is made and kept by every retry, so a retried send is the same
  request and the server drops it as a repeat (C2C within 120 s, by sender, ``MsgSeq``,
  ``MsgRandom`` and content; a group by ``Random`` within 5 minutes). They come from a
  process-wide counter started at a random number (again in a forked child), not
  drawn at random: at a group's 40 messages a second, 12,000 random uint32s in 5
  minutes would collide (and a message be dropped as a repeat) 1.7% of the time; and
  the server orders one second's messages by ``MsgSeq``, so counted ones keep a
  robot's messages in the order they were sent.
- ``MsgLifeTime`` 0 to 604,800 s; ``SyncOtherMachine`` 1 or 2; ``ForbidCallbackControl``,
  ``SendMsgControl`` and ``MsgPriority`` take the documented words only; ``MsgSeq`` is
  uint32.
- A message's ``MsgBody`` and ``CloudCustomData`` are at most 12 KB of JSON (see
  ``_elements.MAX_MESSAGE_BYTES``). A modification carries a body or custom data.
"""

from __future__ import annotations

import itertools
import os
import random as _random
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from ._elements import MAX_MESSAGE_BYTES, elements_to_json
from ._exceptions import ValidationError
from ._models import _copied, _field, _label, _non_empty, _require_str, converter, register_models

__all__ = [
    "ModifyC2CMessageRequest",
    "ModifyGroupMessageRequest",
    "SendC2CMessageRequest",
    "SendC2CMessageResponse",
    "SendGroupMessageRequest",
    "SendGroupMessageResponse",
    "SendStreamChunkRequest",
    "SendStreamChunkResponse",
    "SentGroupMessage",
    "SentMessage",
    "group_key",
]

MAX_UINT32 = 0xFFFFFFFF
_LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_MSG_LIFETIME = 604_800  # seconds: 7 days (90026 past it)
FORBID_CALLBACKS = frozenset({"ForbidBeforeSendMsgCallback", "ForbidAfterSendMsgCallback"})
C2C_SEND_CONTROL = frozenset({"NoUnread", "NoLastMsg", "WithMuteNotifications"})
GROUP_SEND_CONTROL = frozenset({"NoUnread", "NoLastMsg"})
MSG_PRIORITIES = frozenset({"High", "Normal", "Low", "Lowest"})
# The rate-limit key of a group's own budget: 40 messages a second per group (2.2).
GROUP_KEY_PREFIX = "group_messages/"


def group_key(group_id: str) -> str:
    """The limiter key of one group's message budget, beside its API's."""
    return GROUP_KEY_PREFIX + group_id


_numbers = itertools.count(_random.getrandbits(32))


def _start_again() -> None:
    # A forked worker would otherwise count on from its parent's number, as would its
    # siblings: their messages to one group would repeat each other's Random.
    global _numbers
    _numbers = itertools.count(_random.getrandbits(32))


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_start_again)


def new_random() -> int:
    """The next uint32 for ``MsgRandom``, ``Random`` or ``MsgSeq`` (see the module docstring)."""
    return next(_numbers) & MAX_UINT32


def _uint32(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if type(value) is not int or not 0 <= value <= MAX_UINT32:
        raise ValidationError(
            f"{_label(attribute)} must be an integer 0 to {MAX_UINT32}, got {value!r}"
        )


def _required_uint32(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        raise ValidationError(f"{_label(attribute)} is required")
    _uint32(instance, attribute, value)


def _server_time(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    # A time a datetime can hold (to the year 9999): anything else is a broken answer.
    if not 0 <= value <= _LAST_SECOND:
        raise ValueError(f"{attribute.name} {value} is no time")


def _optional_text(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _require_str(_label(attribute), value)


def _optional_account(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _non_empty(instance, attribute, value)


def _words(allowed: frozenset[str]) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        field = _label(attribute)
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ValidationError(f"{field} must be a list of words, not {type(value).__name__}")
        for word in value:
            if word not in allowed:
                raise ValidationError(
                    f"{field}: {word!r} is not one of {', '.join(sorted(allowed))}"
                )

    return check


def _lifetime(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if type(value) is not int or not 0 <= value <= MAX_MSG_LIFETIME:
        raise ValidationError(
            f"{_label(attribute)} must be whole seconds 0 to {MAX_MSG_LIFETIME} (7 days),"
            f" got {value!r}"
        )


def _sync(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (type(value) is not int or value not in (1, 2)):
        raise ValidationError(f"{_label(attribute)} must be 1 (sync) or 2 (do not), got {value!r}")


def _priority(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and value not in MSG_PRIORITIES:
        raise ValidationError(
            f"{_label(attribute)} must be one of {', '.join(sorted(MSG_PRIORITIES))}, got {value!r}"
        )


def _push(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise ValidationError(f"{_label(attribute)} must be an object, not {type(value).__name__}")


def _body(value: object) -> object:
    """A message as its ``MsgBody`` (``None``: none, for a modification of custom data)."""
    return None if value is None else elements_to_json(value)  # type: ignore[arg-type]


def _flag(value: object) -> object:
    """A documented 0/1 flag from a bool: ``True`` is 1, ``False`` is left out."""
    return 1 if value is True else None if value in (False, None) else value


def json_bytes(value: object) -> int:
    """The UTF-8 bytes of ``value`` as JSON, encoded as requests are."""
    from ._envelope import ENCODER  # the encoder the request is sent with

    return len(ENCODER.encode(value).encode())


# A text message's JSON without its text: ``[{"MsgType":"TIMTextElem",...,"Text":""}}]``.
TEXT_MESSAGE_OVERHEAD = len(b'[{"MsgType":"TIMTextElem","MsgContent":{"Text":""}}]')


def text_bytes(text: str) -> int:
    """The bytes ``text`` adds to a text message's JSON (its escaped form; additive)."""
    return json_bytes(text) - 2  # without the quotes


def _check_size(body: object, custom: str | None) -> None:
    size = 0 if custom is None else len(custom.encode())
    if body is not None:
        size += json_bytes(body)
    if size > MAX_MESSAGE_BYTES:
        raise ValidationError(
            f"the message is {size} bytes of MsgBody and CloudCustomData; at most"
            f" {MAX_MESSAGE_BYTES} (12 KB) are sent"
        )


@attrs.frozen(slots=True, kw_only=True)
class SendC2CMessageRequest:
    """Body of ``openim/sendmsg``: one message from ``from_account`` to ``to_account``."""

    from_account: str | None = _field("From_Account", default=None, validator=_optional_account)
    to_account: str = _field("To_Account", validator=_non_empty)
    body: list[dict[str, Any]] = _field("MsgBody", converter=_body)
    random: int = _field("MsgRandom", factory=new_random, validator=_uint32)
    msg_seq: int | None = _field("MsgSeq", default=None, validator=_uint32)
    msg_lifetime: int | None = _field("MsgLifeTime", default=None, validator=_lifetime)
    sync_other_machine: int | None = _field("SyncOtherMachine", default=None, validator=_sync)
    forbid_callbacks: tuple[str, ...] = _field(
        "ForbidCallbackControl", default=(), converter=_copied, validator=_words(FORBID_CALLBACKS)
    )
    send_control: tuple[str, ...] = _field(
        "SendMsgControl", default=(), converter=_copied, validator=_words(C2C_SEND_CONTROL)
    )
    cloud_custom_data: str | None = _field(
        "CloudCustomData", default=None, validator=_optional_text
    )
    offline_push: Mapping[str, Any] | None = _field(
        "OfflinePushInfo", default=None, validator=_push
    )

    def __attrs_post_init__(self) -> None:
        _check_size(self.body, self.cloud_custom_data)


@attrs.frozen(slots=True, kw_only=True)
class SendGroupMessageRequest:
    """Body of ``group_open_http_svc/send_group_msg``."""

    group_id: str = _field("GroupId", validator=_non_empty)
    body: list[dict[str, Any]] = _field("MsgBody", converter=_body)
    random: int = _field("Random", factory=new_random, validator=_uint32)
    from_account: str | None = _field("From_Account", default=None, validator=_optional_account)
    msg_priority: str | None = _field("MsgPriority", default=None, validator=_priority)
    online_only: int | None = _field("OnlineOnlyFlag", default=None, converter=_flag)
    forbid_callbacks: tuple[str, ...] = _field(
        "ForbidCallbackControl", default=(), converter=_copied, validator=_words(FORBID_CALLBACKS)
    )
    send_control: tuple[str, ...] = _field(
        "SendMsgControl", default=(), converter=_copied, validator=_words(GROUP_SEND_CONTROL)
    )
    cloud_custom_data: str | None = _field(
        "CloudCustomData", default=None, validator=_optional_text
    )
    offline_push: Mapping[str, Any] | None = _field(
        "OfflinePushInfo", default=None, validator=_push
    )

    def __attrs_post_init__(self) -> None:
        if self.online_only not in (None, 1):
            raise ValidationError(f"online_only must be True or False, got {self.online_only!r}")
        _check_size(self.body, self.cloud_custom_data)


def _check_modification(body: object, custom: str | None) -> None:
    if body is None and custom is None:
        raise ValidationError("a modification replaces the body or the custom data: give one")
    _check_size(body, custom)


@attrs.frozen(slots=True, kw_only=True)
class ModifyC2CMessageRequest:
    """Body of ``openim/modify_c2c_msg``: replaces a one-to-one message's body or data."""

    from_account: str = _field("From_Account", validator=_non_empty)
    to_account: str = _field("To_Account", validator=_non_empty)
    msg_key: str = _field("MsgKey", validator=_non_empty)
    body: list[dict[str, Any]] | None = _field("MsgBody", default=None, converter=_body)
    cloud_custom_data: str | None = _field(
        "CloudCustomData", default=None, validator=_optional_text
    )

    def __attrs_post_init__(self) -> None:
        _check_modification(self.body, self.cloud_custom_data)


@attrs.frozen(slots=True, kw_only=True)
class ModifyGroupMessageRequest:
    """Body of ``openim/modify_group_msg`` (not for live groups)."""

    group_id: str = _field("GroupId", validator=_non_empty)
    msg_seq: int = _field("MsgSeq", validator=_required_uint32)
    body: list[dict[str, Any]] | None = _field("MsgBody", default=None, converter=_body)
    cloud_custom_data: str | None = _field(
        "CloudCustomData", default=None, validator=_optional_text
    )

    def __attrs_post_init__(self) -> None:
        _check_modification(self.body, self.cloud_custom_data)


@attrs.frozen(slots=True, kw_only=True)
class SendStreamChunkRequest:
    """Body of ``openim_robot_http_svc/send_stream_msg``: one piece of a streamed reply.

    The first piece of a stream has no ``msg_key``; each later one carries the key the
    first was answered with. ``finish`` (``Finish: 1``) ends the stream.
    """

    from_account: str = _field("From_Account", validator=_non_empty)
    to_account: str = _field("To_Account", validator=_non_empty)
    chunk: str = _field("Chunk")
    msg_key: str | None = _field("MsgKey", default=None, validator=_optional_account)
    finish: int | None = _field("Finish", default=None, converter=_flag)

    def __attrs_post_init__(self) -> None:
        if self.finish not in (None, 1):
            raise ValidationError(f"finish must be True or False, got {self.finish!r}")
        _require_str("chunk", self.chunk)
        if not self.chunk and self.finish is None:
            raise ValidationError("chunk must not be empty, except on the call that finishes")
        size = TEXT_MESSAGE_OVERHEAD + text_bytes(self.chunk)
        if size > MAX_MESSAGE_BYTES:
            raise ValidationError(
                f"the chunk is {size} bytes as a text message; at most {MAX_MESSAGE_BYTES}"
                " (12 KB) are sent"
            )


@attrs.frozen(slots=True)
class SendStreamChunkResponse:
    """Answer of ``openim_robot_http_svc/send_stream_msg``: the stream's ``MsgKey``."""

    msg_key: str = _field("MsgKey")


@attrs.frozen(slots=True)
class SendC2CMessageResponse:
    """Answer of ``openim/sendmsg``."""

    msg_time: int = _field("MsgTime", validator=_server_time)
    msg_key: str = _field("MsgKey")


@attrs.frozen(slots=True)
class SendGroupMessageResponse:
    """Answer of ``group_open_http_svc/send_group_msg``."""

    msg_time: int = _field("MsgTime", validator=_server_time)
    msg_seq: int = _field("MsgSeq")


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


@attrs.frozen(slots=True)
class SentMessage:
    """A one-to-one message sent: its ``msg_key`` (to modify or recall it), the server's
    ``msg_time`` (aware, UTC) and the ``random`` (``MsgRandom``) it was sent with."""

    msg_key: str
    msg_time: datetime
    random: int

    @classmethod
    def of(cls, answer: SendC2CMessageResponse, body: SendC2CMessageRequest) -> SentMessage:
        return cls(answer.msg_key, _utc(answer.msg_time), body.random)


@attrs.frozen(slots=True)
class SentGroupMessage:
    """A group message sent: the group's ``msg_seq`` (to modify it), the server's
    ``msg_time`` (aware, UTC) and the ``random`` it was sent with."""

    msg_seq: int
    msg_time: datetime
    random: int

    @classmethod
    def of(
        cls, answer: SendGroupMessageResponse, body: SendGroupMessageRequest
    ) -> SentGroupMessage:
        return cls(answer.msg_seq, _utc(answer.msg_time), body.random)


register_models(
    converter,
    (
        SendC2CMessageRequest,
        SendGroupMessageRequest,
        ModifyC2CMessageRequest,
        ModifyGroupMessageRequest,
        SendStreamChunkRequest,
        SendC2CMessageResponse,
        SendGroupMessageResponse,
        SendStreamChunkResponse,
    ),
)
