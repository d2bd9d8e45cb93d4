"""Request bodies and results as attrs classes, and the one converter that maps vendor keys.

Validation lives on the request classes so that a bad argument is refused before
anything is sent, with a message naming the field and the rule.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any, TypeGuard, cast

import attrs
from cattrs import Converter
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._exceptions import TencentChatError, ValidationError

__all__ = [
    "ActionResult",
    "AttemptRecord",
    "CreateRobotRequest",
    "DeleteRobotRequest",
    "GetAllRobotsRequest",
    "GetAllRobotsResponse",
    "GetLiveRoomRobotsResponse",
    "LiveGroupRobotsRequest",
    "LiveRoomAddRobotsRequest",
    "LiveRoomRequest",
    "LiveRoomRobotList",
    "LiveRoomRobotsRequest",
    "RoomRobotRequest",
    "converter",
    "register_models",
]

_KEY = "vendor_key"

# The rules the vendor's pages state, each checked before anything is sent (the pages are
# in the spec folder, api-docs/; where a page states no rule, none is checked):
#
# - A robot's UserID "must start with @RBT#" and is "a string of up to 32 bytes"
#   (openim_robot_http_svc-create_robot.txt: UserID; -delete_robot.txt: Robot_Account).
#   Every field naming a robot is held to it: the Room Engine's Member_Account is a
#   "robot ID" (room_engine_http_srv-add_robot.txt), a live group's Member_Account a
#   "List of robot accounts" (group_open_avchatroom_http_svc-add_robots.txt), a live
#   room's RobotList_Account the robots of its add_robot / del_robot (robot-conversation.md,
#   section 3). An id breaking the rule can be no robot, so no call naming one can succeed,
#   removals included. (The pages' samples, "user1" and "bot1", break their own rule.)
# - Profile fields: SelfSignature "up to 500 bytes" (create_robot.txt); 40601, "the value
#   of the profile field exceeds the length limit of 500 bytes", holds Nick and FaceUrl to
#   the same (create_robot.txt, error codes).
# - A live room's RoomId is at most 48 bytes, and a live room holds at most three robots
#   (robot-conversation.md, section 3).
# - Required fields (every RoomId, GroupId, Member_Account) are not empty. The pages give
#   no length or character rule for a Room Engine RoomId or a live group's GroupId, nor a
#   count for a live group's Member_Account: none is checked.
ROBOT_PREFIX = "@RBT#"
MAX_ROBOT_ID_BYTES = 32
MAX_PROFILE_FIELD_BYTES = 500
MAX_LIVE_ROOM_ID_BYTES = 48
MAX_LIVE_ROOM_ROBOTS = 3


def _require_str(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, not {type(value).__name__}")
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate, e.g. from undecodable bytes
        raise ValidationError(f"{field} is not valid Unicode text: {reprlib.repr(value)}") from None
    return value


def _label(attribute: attrs.Attribute[Any]) -> str:
    return f"{attribute.metadata[_KEY]} ({attribute.name})"


def _check_robot_id(field: str, value: object) -> None:
    """A robot's UserID: text starting with ``@RBT#``, at most 32 UTF-8 bytes."""
    if (
        isinstance(value, str)
        and value.isascii()  # one byte a character
        and len(value) <= MAX_ROBOT_ID_BYTES
        and value.startswith(ROBOT_PREFIX)
    ):
        return  # the common case, settled without encoding
    text = _require_str(field, value)
    if not text.startswith(ROBOT_PREFIX):
        raise ValidationError(f"{field} must start with {ROBOT_PREFIX!r}, got {text!r}")
    if len(text.encode()) > MAX_ROBOT_ID_BYTES:
        raise ValidationError(
            f"{field} must be at most {MAX_ROBOT_ID_BYTES} UTF-8 bytes, got {len(text.encode())}"
        )


def _robot_id(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    _check_robot_id(_label(attribute), value)


def _non_empty(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if isinstance(value, str) and value.isascii() and value:
        return  # the common case, settled without a call: ASCII text encodes
    field = _label(attribute)
    if not _require_str(field, value):
        raise ValidationError(f"{field} must not be empty")


def _is_sequence(value: object) -> TypeGuard[Sequence[Any]]:
    """A sequence of items, not text (a string is refused, not split into characters)."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _copied(value: object) -> object:
    """A sequence as a tuple: the caller changing it later does not change the request.

    Anything else stays as it is for the validator to judge.
    """
    return tuple(value) if _is_sequence(value) and not isinstance(value, tuple) else value


def _profile_field(_: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is None:
        return
    field = _label(attribute)
    size = len(_require_str(field, value).encode())
    if size > MAX_PROFILE_FIELD_BYTES:
        raise ValidationError(
            f"{field} must be at most {MAX_PROFILE_FIELD_BYTES} UTF-8 bytes, got {size}"
        )


def _field(key: str, **kwargs: Any) -> Any:
    """An attrs field that knows its key in the vendor's JSON."""
    return attrs.field(metadata={_KEY: key}, **kwargs)


def _robot_list(_: object, attribute: attrs.Attribute[Sequence[str]], value: object) -> None:
    """A non-empty list of robots' UserIDs."""
    field = _label(attribute)
    if not _is_sequence(value):
        raise ValidationError(f"{field} must be a list of account ids, not {type(value).__name__}")
    if not value:
        raise ValidationError(f"{field} must not be empty")
    for index, member in enumerate(value):
        if not isinstance(member, str) or not member:
            raise ValidationError(
                f"{field}[{index}] must be a non-empty string, got {reprlib.repr(member)}"
            )
        _check_robot_id(f"{field}[{index}]", member)


def _live_room_id(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    field = _label(attribute)
    text = _require_str(field, value)
    size = len(text.encode())
    if not 0 < size <= MAX_LIVE_ROOM_ID_BYTES:
        raise ValidationError(
            f"{field} must be 1 to {MAX_LIVE_ROOM_ID_BYTES} UTF-8 bytes, got {size}"
        )


# A list this long cannot name at most three robots sensibly: refused before it is read.
_MAX_LIVE_ROOM_LIST = 64


def _robots_for_live_room(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """At most three distinct robots, as a live room holds (a robot named twice counts once)."""
    listed = len(value) if _is_sequence(value) else 0
    count = listed if listed > _MAX_LIVE_ROOM_LIST else -1
    if count < 0:
        _robot_list(instance, attribute, value)
        count = len(set(cast("Sequence[str]", value)))
    if count > MAX_LIVE_ROOM_ROBOTS:
        raise ValidationError(
            f"{_label(attribute)} names {count} robots; a live room holds at most"
            f" {MAX_LIVE_ROOM_ROBOTS}"
        )


@attrs.frozen(slots=True)
class CreateRobotRequest:
    """Body of ``openim_robot_http_svc/create_robot``."""

    # UserID: "up to 32 bytes", "must start with @RBT#"; SelfSignature "up to 500 bytes",
    # and 40601 holds every profile field to 500 (create_robot.txt).
    user_id: str = _field("UserID", validator=_robot_id)
    nick: str | None = _field("Nick", default=None, validator=_profile_field)
    face_url: str | None = _field("FaceUrl", default=None, validator=_profile_field)
    self_signature: str | None = _field("SelfSignature", default=None, validator=_profile_field)


@attrs.frozen(slots=True)
class DeleteRobotRequest:
    """Body of ``openim_robot_http_svc/delete_robot``."""

    # Robot_Account: "up to 32 bytes", "must start with @RBT#" (delete_robot.txt).
    robot_account: str = _field("Robot_Account", validator=_robot_id)


@attrs.frozen(slots=True)
class GetAllRobotsRequest:
    """Body of ``openim_robot_http_svc/get_all_robots``: always ``{}``."""


@attrs.frozen(slots=True)
class RoomRobotRequest:
    """Body of ``room_engine_http_srv/add_robot`` and ``.../delete_robot``."""

    # RoomId: "Required", no length given; Member_Account: a "robot ID"
    # (room_engine_http_srv-add_robot.txt).
    room_id: str = _field("RoomId", validator=_non_empty)
    robot_account: str = _field("Member_Account", validator=[_non_empty, _robot_id])


@attrs.frozen(slots=True)
class LiveGroupRobotsRequest:
    """Body of ``group_open_avchatroom_http_svc/add_robots`` and ``.../del_robots``."""

    # GroupId: "Required", no rule given; Member_Account: a "List of robot accounts"
    # (group_open_avchatroom_http_svc-add_robots.txt).
    group_id: str = _field("GroupId", validator=_non_empty)
    robot_accounts: Sequence[str] = _field(
        "Member_Account", converter=_copied, validator=_robot_list
    )


@attrs.frozen(slots=True)
class LiveRoomAddRobotsRequest:
    """Body of ``live_engine_http_srv/add_robot``: at most three robots."""

    # RoomId at most 48 bytes; at most three robots in a room (robot-conversation.md, 3).
    room_id: str = _field("RoomId", validator=_live_room_id)
    robot_accounts: Sequence[str] = _field(
        "RobotList_Account", converter=_copied, validator=_robots_for_live_room
    )


@attrs.frozen(slots=True)
class LiveRoomRobotsRequest:
    """Body of ``live_engine_http_srv/del_robot``."""

    # "the same two fields" as add_robot (robot-conversation.md, section 3).
    room_id: str = _field("RoomId", validator=_live_room_id)
    robot_accounts: Sequence[str] = _field(
        "RobotList_Account", converter=_copied, validator=_robot_list
    )


@attrs.frozen(slots=True)
class LiveRoomRequest:
    """Body of ``live_engine_http_srv/get_robot``."""

    # RoomId, as add_robot's: at most 48 bytes (robot-conversation.md, section 3).
    room_id: str = _field("RoomId", validator=_live_room_id)


@attrs.frozen(slots=True)
class ActionResult:
    """The outcome of a call that returns nothing but success.

    ``request_id`` is the server's ``RequestId`` (room calls send one; others ``None``):
    quote it when asking Tencent support about a call. ``settled_on_retry`` is true when
    an attempt went unanswered (connection dropped, time-out, gateway page) and the
    retry was told the change was already in place (removing a robot from a room: "not
    a member", 100005): the call did what was asked, and ``request_id`` is the retry's.
    ``random`` is the ``random`` query parameter of the attempt that got this answer:
    Tencent support can trace a call by it, also when the answer had no ``RequestId``.
    """

    request_id: str | None = _field("RequestId", default=None)
    settled_on_retry: bool = attrs.field(default=False, kw_only=True)
    # Metadata of the exchange, not of the outcome: results compare equal without it.
    random: int | None = attrs.field(default=None, kw_only=True, eq=False)


@attrs.frozen(slots=True)
class GetAllRobotsResponse:
    """Answer of ``openim_robot_http_svc/get_all_robots``."""

    robot_account: list[str] = _field("Robot_Account", factory=list)
    request_id: str | None = _field("RequestId", default=None)


@attrs.frozen(slots=True)
class LiveRoomRobotList:
    """The ``Response`` object of ``live_engine_http_srv/get_robot``."""

    robot_list_account: list[str] = _field("RobotList_Account", factory=list)


@attrs.frozen(slots=True)
class GetLiveRoomRobotsResponse:
    """Answer of ``live_engine_http_srv/get_robot``."""

    response: LiveRoomRobotList = _field("Response", factory=LiveRoomRobotList)
    request_id: str | None = _field("RequestId", default=None)


@attrs.frozen(slots=True)
class AttemptRecord:
    """One try of one call, as reported to ``TencentChat(on_attempt=...)``.

    ``started`` is the event loop's clock when the request was handed to the transport
    (after the rate permit); ``elapsed`` runs until the answer was parsed. ``error`` is
    what the try raised (``None`` on success); a later try may still succeed. ``random``
    is the ``random`` query parameter the try was sent with.
    """

    endpoint: str
    attempt: int
    started: float
    elapsed: float
    error: TencentChatError | None = None
    request_id: str | None = None
    random: int | None = None


_MODELS = (
    CreateRobotRequest,
    DeleteRobotRequest,
    GetAllRobotsRequest,
    RoomRobotRequest,
    LiveGroupRobotsRequest,
    LiveRoomAddRobotsRequest,
    LiveRoomRobotsRequest,
    LiveRoomRequest,
    ActionResult,
    GetAllRobotsResponse,
    LiveRoomRobotList,
    GetLiveRoomRobotsResponse,
)


def _strict_str(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_str_list(value: object, _: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError("expected a list of strings")
    return value


def _strict_int(value: object, _: object) -> int:
    if type(value) is not int:  # bool is an int subclass; a JSON true is no number
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def register_models(conv: Converter, classes: Sequence[type[Any]]) -> None:
    """Teach ``conv`` the vendor keys of ``classes`` (each field's ``vendor_key``)."""
    for cls in classes:
        # The vendor's keys follow no single convention, so each field names its own.
        # A field with no vendor key is the SDK's own: never sent, never read.
        overrides: dict[str, Any] = {
            field.name: override(rename=field.metadata[_KEY])
            if _KEY in field.metadata
            else override(omit=True)
            for field in attrs.fields(cls)
        }
        conv.register_unstructure_hook(
            cls,
            # Unset optional fields are left out of the body rather than sent as null.
            make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=True, **overrides),
        )
        conv.register_structure_hook(
            cls,
            make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=False, **overrides),
        )


def _make_converter() -> Converter:
    conv = Converter()
    # cattrs would coerce (str(5), list("abc")); a response of the wrong shape is an error.
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook_func(lambda t: t == list[str], _strict_str_list)
    register_models(conv, _MODELS)
    return conv


converter = _make_converter()
"""Turns request classes into vendor-keyed dicts and response dicts into result classes."""
