"""The fake app's data (robots, rooms, live groups) and each endpoint's documented rules.

Pure synchronous logic: requests arrive here already authenticated, as a parsed JSON object.
Within an endpoint the first failing check wins, in this order:

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
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any, NamedTuple, TypeGuard

__all__ = [
    "ADD_ROBOTS",
    "CREATE_ROBOT",
    "DELETE_ROBOT",
    "DEL_ROBOTS",
    "ENDPOINTS",
    "GET_ALL_ROBOTS",
    "ROOM_ADD_ROBOT",
    "ROOM_DELETE_ROBOT",
    "Answer",
    "ChatState",
    "group_id_is_valid",
    "internal_error_code",
]

CREATE_ROBOT = "openim_robot_http_svc/create_robot"
GET_ALL_ROBOTS = "openim_robot_http_svc/get_all_robots"
DELETE_ROBOT = "openim_robot_http_svc/delete_robot"
ROOM_ADD_ROBOT = "room_engine_http_srv/add_robot"
ROOM_DELETE_ROBOT = "room_engine_http_srv/delete_robot"
ADD_ROBOTS = "group_open_avchatroom_http_svc/add_robots"
DEL_ROBOTS = "group_open_avchatroom_http_svc/del_robots"

ENDPOINTS: tuple[str, ...] = (
    CREATE_ROBOT,
    GET_ALL_ROBOTS,
    DELETE_ROBOT,
    ROOM_ADD_ROBOT,
    ROOM_DELETE_ROBOT,
    ADD_ROBOTS,
    DEL_ROBOTS,
)

ROBOT_PREFIX = "@RBT#"
MAX_ROBOT_ID_BYTES = 32
MAX_PROFILE_BYTES = 500
MAX_GROUP_ID_BYTES = 48
PROFILE_FIELDS = ("Nick", "FaceUrl", "SelfSignature")
ROOM_SERVICE = "room_engine_http_srv"


class Answer(NamedTuple):
    """An endpoint's verdict: ``code`` 0 for success, with any extra response fields."""

    code: int
    info: str = ""
    fields: dict[str, Any] | None = None


OK = Answer(0)


def internal_error_code(endpoint: str) -> int:
    """The "system error, retry" code of the endpoint's service."""
    return 100001 if endpoint.startswith(ROOM_SERVICE + "/") else 10002


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


class _Robot:
    __slots__ = ("profile", "valid")

    def __init__(self) -> None:
        self.profile: dict[str, str] = {}
        self.valid = True


class ChatState:
    """One app's robots, rooms and live groups, and the rules the endpoints enforce."""

    def __init__(self, *, max_robots: int = 20, max_robots_per_room: int = 10) -> None:
        if max_robots < 0 or max_robots_per_room < 0:
            raise ValueError("limits must not be negative")
        self.max_robots = max_robots
        self.max_robots_per_room = max_robots_per_room
        # Dicts keep insertion order: robots list in creation order, members in join order.
        self._robots: dict[str, _Robot] = {}
        self._rooms: dict[str, dict[str, None]] = {}
        self._groups: dict[str, dict[str, None]] = {}
        self._rules: dict[str, Callable[[dict[str, Any]], Answer]] = {
            CREATE_ROBOT: self._create_robot,
            GET_ALL_ROBOTS: self._get_all_robots,
            DELETE_ROBOT: self._delete_robot,
            ROOM_ADD_ROBOT: self._room_add_robot,
            ROOM_DELETE_ROBOT: self._room_delete_robot,
            ADD_ROBOTS: self._group_add_robots,
            DEL_ROBOTS: self._group_del_robots,
        }

    # --- set-up and inspection (the fake's Python face) ---

    def create_room(self, room_id: str) -> None:
        if not _nonempty_str(room_id):
            raise ValueError("room_id must be a non-empty string")
        self._rooms.setdefault(room_id, {})

    def dismiss_room(self, room_id: str) -> None:
        del self._rooms[room_id]

    def create_live_group(self, group_id: str) -> None:
        if not isinstance(group_id, str) or not group_id_is_valid(group_id):
            raise ValueError(f"invalid live group id {group_id!r}")
        self._groups.setdefault(group_id, {})

    def dismiss_live_group(self, group_id: str) -> None:
        del self._groups[group_id]

    def robots(self) -> list[str]:
        return [uid for uid, robot in self._robots.items() if robot.valid]

    def robot_profile(self, user_id: str) -> dict[str, str]:
        return dict(self._robots[user_id].profile)

    def room_members(self, room_id: str) -> list[str]:
        return list(self._rooms[room_id])

    def live_group_members(self, group_id: str) -> list[str]:
        return list(self._groups[group_id])

    def _is_valid_robot(self, user_id: object) -> bool:
        robot = self._robots.get(user_id) if isinstance(user_id, str) else None
        return robot is not None and robot.valid

    # --- the endpoints ---

    def handle(self, endpoint: str, body: dict[str, Any]) -> Answer:
        """Apply ``endpoint``'s rules to an authenticated request body."""
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
