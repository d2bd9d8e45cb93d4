"""The fake app's data (robots, rooms, live groups, live rooms) and each endpoint's rules.

Pure synchronous logic: requests arrive here already authenticated, as a parsed JSON object.
The rules are written by hand from the vendor's pages (not from the client's code), one
method per path of the SDK's endpoint table. Within an endpoint the first failing check
wins, in this order:

- create_robot: UserID (string, ``@RBT#`` prefix, <= 32 UTF-8 bytes) 10004; Nick/FaceUrl/
  SelfSignature not strings 10004, over 500 bytes 40601; a new valid robot past
  ``max_robots`` 10008.
- delete_robot: Robot_Account not a robot ever created 10004 (already deleted is OK).
- room add/delete: RoomId, then Member_Account, not a non-empty string 100002; unknown
  room 100004; add: not a valid robot 100002, room full 100700 (already in: OK);
  delete: not in the room 100005.
- live group add/del: GroupId not a string, Member_Account not a non-empty array of
  strings 10004; malformed GroupId 10015; unknown group 10010; add: a member not a valid
  robot 10004; del: a member never created as a robot 10004. All or nothing.
- live room (TUILiveKit) add_robot/del_robot/get_robot: RoomId not a non-empty string,
  or over 48 UTF-8 bytes, 100002; (add/del) RobotList_Account not a non-empty array of
  non-empty strings 100002; RoomId of no live room 100004, but 100006 if it names a
  TUIRoom room or a live group instead; add: a member not a valid robot 100002, more
  than ``max_robots_per_live_room`` (3) robots in the room afterwards 100002 (no code is
  documented: see ``LIVE_ROOM_FULL``; already in: OK); del: a member never created as a
  robot 100002 (one not in the room: OK). All or nothing. get_robot answers
  ``Response.RobotList_Account``.
- the message APIs (``openim/sendmsg``, ``group_open_http_svc/send_group_msg``,
  ``openim/modify_c2c_msg``, ``openim/modify_group_msg``): see :mod:`._messages`, which
  also keeps users, ordinary groups, conversations and group messages.
- ``openim_robot_http_svc/send_stream_msg`` (a robot's reply in pieces): see
  :mod:`._streams`; the streamed message is kept in :mod:`._messages`' conversations.

Live groups and ordinary groups share one GroupId space; the live group robot APIs
(``group_open_avchatroom_http_svc``) see live groups only (an ordinary group's id: 10010).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

from .._endpoints import Endpoint
from ._answer import OK, Answer
from ._messages import Messages
from ._records import CallbackEvent, StoredGroupMessage, StoredMessage
from ._streams import Streams

__all__ = [
    "ENDPOINTS",
    "Answer",
    "ChatState",
    "carries_request_id",
    "group_id_is_valid",
    "internal_error_code",
]

# The paths the fake serves: every row of the SDK's endpoint table.
ENDPOINTS: tuple[str, ...] = Endpoint.ALL
"""Every ``service/command`` path the fake serves."""

ROBOT_PREFIX = "@RBT#"
MAX_ROBOT_ID_BYTES = 32
MAX_PROFILE_BYTES = 500
MAX_GROUP_ID_BYTES = 48
MAX_LIVE_ROOM_ID_BYTES = 48
PROFILE_FIELDS = ("Nick", "FaceUrl", "SelfSignature")
# The TUIRoom and TUILiveKit services: codes of their own (100001 for an internal
# error), and a RequestId in every answer, failures included.
ENGINE_SERVICES = frozenset({"room_engine_http_srv", "live_engine_http_srv"})
# No code is documented for a fourth robot in a live room. 100002 ("invalid parameter")
# is one live_engine documents, so a client written from the page handles it; room_engine's
# 100700 is not among live_engine's codes, and the fake answers no code a page does not list.
LIVE_ROOM_FULL = 100002


def _is_engine(endpoint: str) -> bool:
    return endpoint.partition("/")[0] in ENGINE_SERVICES


def internal_error_code(endpoint: str) -> int:
    """The "system error, retry" code of the endpoint's service."""
    return 100001 if _is_engine(endpoint) else 10002


def carries_request_id(endpoint: str) -> bool:
    """Whether every answer of ``endpoint``'s service has a ``RequestId``."""
    return _is_engine(endpoint)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _is_robot_id(value: object) -> TypeGuard[str]:
    return (
        isinstance(value, str)
        and value.startswith(ROBOT_PREFIX)
        and _utf8_len(value) <= MAX_ROBOT_ID_BYTES
    )


def group_id_is_valid(group_id: str) -> bool:
    """Non-empty, at most 48 UTF-8 bytes, no whitespace or control characters."""
    return 0 < _utf8_len(group_id) <= MAX_GROUP_ID_BYTES and not any(
        ch.isspace() or unicodedata.category(ch) == "Cc" for ch in group_id
    )


def _nonempty_str(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def _nonempty_str_list(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and bool(value) and all(_nonempty_str(v) for v in value)


class _Robot:
    __slots__ = ("profile", "valid")

    def __init__(self) -> None:
        self.profile: dict[str, str] = {}
        self.valid = True


class ChatState:
    """One app's robots, rooms, live groups and live rooms, and the endpoints' rules.

    Users, ordinary groups and messages live in :attr:`messages` (:mod:`._messages`),
    the state of streamed replies in :attr:`streams` (:mod:`._streams`).
    """

    def __init__(
        self,
        *,
        max_robots: int = 20,
        max_robots_per_room: int = 10,
        max_robots_per_live_room: int = 3,
        admin: str = "administrator",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if min(max_robots, max_robots_per_room, max_robots_per_live_room) < 0:
            raise ValueError("limits must not be negative")
        self.max_robots = max_robots
        self.max_robots_per_room = max_robots_per_room
        self.max_robots_per_live_room = max_robots_per_live_room
        # Dicts keep insertion order: robots list in creation order, members in join order.
        self._robots: dict[str, _Robot] = {}
        self._rooms: dict[str, dict[str, None]] = {}
        self._groups: dict[str, dict[str, None]] = {}
        self._live_rooms: dict[str, dict[str, None]] = {}
        self.clock = clock
        self.messages = Messages(
            admin=admin,
            is_robot=self._is_valid_robot,
            live_groups=self._groups,
            group_id_is_valid=group_id_is_valid,
            clock=clock,
            wall_clock=wall_clock,
        )
        self.streams = Streams(messages=self.messages, is_robot=self._is_valid_robot)
        # The arrival time of the request being handled (the message APIs' windows).
        self._arrival = 0.0
        self._rules: dict[str, Callable[[dict[str, Any]], Answer]] = {
            Endpoint.CREATE_ROBOT: self._create_robot,
            Endpoint.GET_ALL_ROBOTS: self._get_all_robots,
            Endpoint.DELETE_ROBOT: self._delete_robot,
            Endpoint.ROOM_ADD_ROBOT: self._room_add_robot,
            Endpoint.ROOM_DELETE_ROBOT: self._room_delete_robot,
            Endpoint.LIVE_GROUP_ADD_ROBOTS: self._group_add_robots,
            Endpoint.LIVE_GROUP_DEL_ROBOTS: self._group_del_robots,
            Endpoint.LIVE_ROOM_ADD_ROBOT: self._live_room_add_robot,
            Endpoint.LIVE_ROOM_DEL_ROBOT: self._live_room_del_robot,
            Endpoint.LIVE_ROOM_GET_ROBOT: self._live_room_get_robot,
            Endpoint.SEND_C2C_MESSAGE: lambda body: self.messages.send_c2c(body, self._arrival),
            Endpoint.SEND_GROUP_MESSAGE: lambda body: self.messages.send_group(body, self._arrival),
            Endpoint.MODIFY_C2C_MESSAGE: self.messages.modify_c2c,
            Endpoint.MODIFY_GROUP_MESSAGE: self.messages.modify_group,
            Endpoint.SEND_STREAM_CHUNK: lambda body: self.streams.send(body, self._arrival),
        }
        # A row added to the SDK's table without rules here would fail at its first
        # request; fail at once instead, naming it.
        unruled = set(ENDPOINTS) - set(self._rules)
        if unruled:
            raise RuntimeError(f"the fake has no rules for {', '.join(sorted(unruled))}")

    # --- set-up and inspection (the fake's Python face) ---

    def create_room(self, room_id: str) -> None:
        if not _nonempty_str(room_id):
            raise ValueError("room_id must be a non-empty string")
        if room_id in self._live_rooms:
            raise ValueError(f"{room_id!r} is a live room: a RoomId names one kind of room")
        self._rooms.setdefault(room_id, {})

    def dismiss_room(self, room_id: str) -> None:
        del self._rooms[room_id]

    def create_live_group(self, group_id: str) -> None:
        if not isinstance(group_id, str) or not group_id_is_valid(group_id):
            raise ValueError(f"invalid live group id {group_id!r}")
        if self.messages.has_group(group_id):
            raise ValueError(f"{group_id!r} is an ordinary group: a GroupId names one group")
        self._groups.setdefault(group_id, {})

    def dismiss_live_group(self, group_id: str) -> None:
        del self._groups[group_id]
        self.messages.forget_group(group_id)

    def create_user(self, user_id: str) -> None:
        """Import a (non-robot) account; no-op if it exists."""
        self.messages.create_user(user_id)

    def users(self) -> list[str]:
        return self.messages.users()

    def create_group(
        self, group_id: str, group_type: str = "Public", members: Sequence[str] = ()
    ) -> None:
        """Create an ordinary group, or add ``members`` to one of that type."""
        self.messages.create_group(group_id, group_type, members)

    def dismiss_group(self, group_id: str) -> None:
        self.messages.dismiss_group(group_id)

    def transcript(self, a: str, b: str) -> list[StoredMessage]:
        self.streams.expire_idle(self.clock())  # a read shows a stream idle too long as ended
        return self.messages.transcript(a, b)

    def messages_snapshot(self) -> dict[str, Any]:
        """Users, groups and messages as a JSON-ready document (``GET /_fake/messages``)."""
        self.streams.expire_idle(self.clock())
        return self.messages.snapshot()

    def group_messages(self, group_id: str) -> list[StoredGroupMessage]:
        return self.messages.group_messages(group_id)

    def take_events(self) -> list[CallbackEvent]:
        """The callbacks owed since the last call (the caller delivers them)."""
        return self.messages.take_events()

    def create_live_room(self, room_id: str) -> None:
        if not _nonempty_str(room_id) or _utf8_len(room_id) > MAX_LIVE_ROOM_ID_BYTES:
            raise ValueError(f"invalid live room id {room_id!r}: 1 to 48 UTF-8 bytes")
        if room_id in self._rooms:
            raise ValueError(f"{room_id!r} is a TUIRoom room: a RoomId names one kind of room")
        self._live_rooms.setdefault(room_id, {})

    def dismiss_live_room(self, room_id: str) -> None:
        del self._live_rooms[room_id]

    def robots(self) -> list[str]:
        return [uid for uid, robot in self._robots.items() if robot.valid]

    def robot_profile(self, user_id: str) -> dict[str, str]:
        return dict(self._robots[user_id].profile)

    def room_members(self, room_id: str) -> list[str]:
        return list(self._rooms[room_id])

    def live_group_members(self, group_id: str) -> list[str]:
        return list(self._groups[group_id])

    def live_room_robots(self, room_id: str) -> list[str]:
        return list(self._live_rooms[room_id])

    def snapshot(self) -> dict[str, Any]:
        """All of the state as a new JSON-ready document (the ``GET /_fake/state`` answer).

        ``robots``: the valid ones, in creation order, each with its profile;
        ``deleted_robots``: UserIDs deleted (kept by the server, still removable from
        rooms); ``rooms``, ``live_groups``, ``live_rooms``: each id to its robots, in
        joining order.
        """
        return {
            "robots": [
                {"user_id": uid, "profile": dict(robot.profile)}
                for uid, robot in self._robots.items()
                if robot.valid
            ],
            "deleted_robots": [uid for uid, robot in self._robots.items() if not robot.valid],
            "rooms": {room: list(members) for room, members in self._rooms.items()},
            "live_groups": {group: list(members) for group, members in self._groups.items()},
            "live_rooms": {room: list(robots) for room, robots in self._live_rooms.items()},
        }

    def _is_valid_robot(self, user_id: object) -> bool:
        robot = self._robots.get(user_id) if isinstance(user_id, str) else None
        return robot is not None and robot.valid

    # --- the endpoints ---

    def handle(self, endpoint: str, body: dict[str, Any], arrival: float | None = None) -> Answer:
        """Apply ``endpoint``'s rules to an authenticated request body.

        ``arrival``: when the request arrived by the fake's clock (default: now), for the
        message APIs' windows.
        """
        self._arrival = self.clock() if arrival is None else arrival
        return self._rules[endpoint](body)

    def _create_robot(self, body: dict[str, Any]) -> Answer:
        user_id = body.get("UserID")
        if not _is_robot_id(user_id):
            return Answer(10004, "UserID must be a string of at most 32 bytes starting with @RBT#")
        profile: dict[str, str] = {}
        for field in PROFILE_FIELDS:
            if field not in body:
                continue
            value = body[field]
            if not isinstance(value, str):
                return Answer(10004, f"{field} must be a string")
            if _utf8_len(value) > MAX_PROFILE_BYTES:
                return Answer(40601, f"{field} exceeds the length limit of 500 bytes")
            profile[field] = value
        robot = self._robots.get(user_id)
        # Creating is idempotent: only a robot that is not valid yet takes a quota slot.
        if (robot is None or not robot.valid) and len(self.robots()) >= self.max_robots:
            return Answer(10008, f"the number of robots reached the limit of {self.max_robots}")
        if robot is None:
            robot = self._robots[user_id] = _Robot()
        robot.valid = True
        robot.profile.update(profile)
        return OK

    def _get_all_robots(self, body: dict[str, Any]) -> Answer:
        return Answer(0, "", {"Robot_Account": self.robots()})

    def _delete_robot(self, body: dict[str, Any]) -> Answer:
        user_id = body.get("Robot_Account")
        if not _is_robot_id(user_id) or user_id not in self._robots:
            return Answer(10004, "Robot_Account is not a robot account of this app")
        # The account is only marked invalid; its UserID is kept (docs), so deleting twice is OK.
        self._robots[user_id].valid = False
        return OK

    def _room_request(self, body: dict[str, Any]) -> tuple[Answer | None, str, str]:
        room_id = body.get("RoomId")
        member = body.get("Member_Account")
        if not _nonempty_str(room_id):
            return Answer(100002, "RoomId must be a non-empty string"), "", ""
        if not _nonempty_str(member):
            return Answer(100002, "Member_Account must be a non-empty string"), "", ""
        if room_id not in self._rooms:
            return Answer(100004, "room does not exist"), "", ""
        return None, room_id, member

    def _room_add_robot(self, body: dict[str, Any]) -> Answer:
        refusal, room_id, member = self._room_request(body)
        if refusal is not None:
            return refusal
        if not self._is_valid_robot(member):
            return Answer(100002, "Member_Account is not a valid robot account")
        members = self._rooms[room_id]
        if member in members:
            return OK
        if len(members) >= self.max_robots_per_room:
            return Answer(100700, f"the room already has {self.max_robots_per_room} robots")
        members[member] = None
        return OK

    def _room_delete_robot(self, body: dict[str, Any]) -> Answer:
        refusal, room_id, member = self._room_request(body)
        if refusal is not None:
            return refusal
        # No validity check: a robot deleted since it joined can still be removed.
        members = self._rooms[room_id]
        if member not in members:
            return Answer(100005, "Member_Account is not a member of the room")
        del members[member]
        return OK

    def _group_request(self, body: dict[str, Any]) -> tuple[Answer | None, str, list[str]]:
        group_id = body.get("GroupId")
        members = body.get("Member_Account")
        if not isinstance(group_id, str):
            return Answer(10004, "GroupId must be a string"), "", []
        if (
            not isinstance(members, list)
            or not members
            or not all(isinstance(m, str) for m in members)
        ):
            return Answer(10004, "Member_Account must be a non-empty array of strings"), "", []
        if not group_id_is_valid(group_id):
            return Answer(10015, "invalid group id"), "", []
        if group_id not in self._groups:
            return Answer(10010, "group does not exist or was dismissed"), "", []
        return None, group_id, members

    def _group_add_robots(self, body: dict[str, Any]) -> Answer:
        refusal, group_id, members = self._group_request(body)
        if refusal is not None:
            return refusal
        for member in members:
            if not self._is_valid_robot(member):
                return Answer(10004, f"{member!r} is not a valid robot account")
        # All-or-nothing: validated before anything changes.
        self._groups[group_id].update(dict.fromkeys(members))
        return OK

    def _group_del_robots(self, body: dict[str, Any]) -> Answer:
        refusal, group_id, members = self._group_request(body)
        if refusal is not None:
            return refusal
        for member in members:
            # A robot deleted since it was added may still be removed; strangers may not.
            if not _is_robot_id(member) or member not in self._robots:
                return Answer(10004, f"{member!r} is not a robot account")
        group = self._groups[group_id]
        for member in members:
            group.pop(member, None)
        return OK

    def _live_room_request(
        self, body: dict[str, Any], *, names_robots: bool = True
    ) -> tuple[Answer | None, str, list[str]]:
        room_id = body.get("RoomId")
        if not _nonempty_str(room_id):
            return Answer(100002, "RoomId must be a non-empty string"), "", []
        if _utf8_len(room_id) > MAX_LIVE_ROOM_ID_BYTES:
            return Answer(100002, "RoomId must be at most 48 bytes"), "", []
        robots: list[str] = []
        if names_robots:
            named = body.get("RobotList_Account")
            if not _nonempty_str_list(named):
                message = "RobotList_Account must be a non-empty array of non-empty strings"
                return Answer(100002, message), "", []
            robots = named
        if room_id not in self._live_rooms:
            if room_id in self._rooms or room_id in self._groups:
                return Answer(100006, "RoomId is not a Live room"), "", []
            return Answer(100004, "room does not exist or was dissolved"), "", []
        return None, room_id, robots

    def _live_room_add_robot(self, body: dict[str, Any]) -> Answer:
        refusal, room_id, robots = self._live_room_request(body)
        if refusal is not None:
            return refusal
        for robot in robots:
            if not self._is_valid_robot(robot):
                return Answer(100002, f"{robot!r} is not a valid robot account")
        room = self._live_rooms[room_id]
        after = {**room, **dict.fromkeys(robots)}  # adding a robot already in is a no-op
        limit = self.max_robots_per_live_room
        if len(after) > limit:
            return Answer(
                LIVE_ROOM_FULL,
                f"a live room holds at most {limit} robots: this one has {len(room)},"
                f" the request would make it {len(after)}",
            )
        # All-or-nothing: validated before anything changes.
        room.update(after)
        return OK

    def _live_room_del_robot(self, body: dict[str, Any]) -> Answer:
        refusal, room_id, robots = self._live_room_request(body)
        if refusal is not None:
            return refusal
        for robot in robots:
            # As for live groups: a robot deleted since it was added may still be removed.
            if not _is_robot_id(robot) or robot not in self._robots:
                return Answer(100002, f"{robot!r} is not a robot account")
        # Removing sets a state: a robot not in the room is already where it was asked to be.
        room = self._live_rooms[room_id]
        for robot in robots:
            room.pop(robot, None)
        return OK

    def _live_room_get_robot(self, body: dict[str, Any]) -> Answer:
        refusal, room_id, _ = self._live_room_request(body, names_robots=False)
        if refusal is not None:
            return refusal
        return Answer(0, "", {"Response": {"RobotList_Account": self.live_room_robots(room_id)}})
