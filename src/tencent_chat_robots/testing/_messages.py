"""The fake's messages: accounts that talk, ordinary groups, conversations, and the rules of
the four message APIs (robot-conversation.md, 2.1, 2.2 and 2.4).

Pure synchronous logic, like :mod:`._state` (which owns a :class:`Messages` and routes
the four paths here); the caller holds the fake's lock. A stream (``send_stream_msg``,
2.3) has rules of its own in :mod:`._streams` and keeps its message here, through the
hooks ``store_c2c_reply``, ``c2c_message`` and ``replace_c2c``. Within an endpoint the
first failing check wins, in this order:

- ``openim/sendmsg``: ``To_Account`` missing or not a non-empty string 90003;
  ``MsgRandom`` missing or not a uint32 90005; ``MsgBody`` not an array 90007, empty
  90002, an element not an object with a ``MsgType`` string and a ``MsgContent`` object,
  a ``TIMTextElem`` without a ``Text`` string, a ``TIMCustomElem`` whose ``Data``,
  ``Desc`` or ``Ext`` is not a string 90010; ``From_Account`` given but not an imported
  account 90008; ``To_Account`` not an imported account 20003; ``MsgLifeTime`` not an
  integer 0..604800 90026; ``SyncOtherMachine`` not 1 or 2, ``MsgSeq`` not a uint32,
  ``ForbidCallbackControl`` / ``SendMsgControl`` not arrays of their documented words,
  ``CloudCustomData`` not a string, ``OfflinePushInfo`` not an object 90001; the JSON of
  ``MsgBody`` plus ``CloudCustomData`` over 12,288 bytes 80002. Then de-duplication,
  then the message is stored and, if ``To_Account`` is a valid robot, a
  ``Bot.OnC2CMessage`` is queued for delivery (``OptPlatform=RESTAPI``).
- ``group_open_http_svc/send_group_msg``: ``GroupId`` missing or not a string 10004;
  malformed 10015; no such group 10010; more than 40 arrivals naming the group in the
  window ``(t-1, t]``, this one included, 10023; ``Random`` missing or not a uint32
  10004; ``MsgBody`` as above but every failure 10004; ``From_Account`` not a string
  10004, not an imported account 10019; ``MsgPriority`` not High/Normal/Low/Lowest,
  ``OnlineOnlyFlag`` not 0 or 1, ``SendMsgControl`` / ``ForbidCallbackControl`` not
  arrays of their words, ``CloudCustomData`` not a string, ``OfflinePushInfo`` not an
  object 10004; over 12,288 bytes 80002. Then de-duplication, then stored (``MsgSeq``
  1, 2, ... per group).
- ``openim/modify_c2c_msg``: ``From_Account``, ``To_Account``, ``MsgKey`` not non-empty
  strings 10004; neither ``MsgBody`` nor ``CloudCustomData`` 10004; ``MsgBody`` (if
  given) as above 10004; ``CloudCustomData`` not a string 10004; no message with that
  key sent by ``From_Account`` to ``To_Account`` 10004; the message as modified over
  12,288 bytes 80002.
- ``openim/modify_group_msg``: ``GroupId`` not a string 10004; malformed 10015; no such
  group 10010; a live (AVChatRoom) group 10007; ``MsgSeq`` missing or not a uint32
  10004; neither ``MsgBody`` nor ``CloudCustomData``, a bad ``MsgBody``, a
  ``CloudCustomData`` not a string 10004; no message with that ``MsgSeq`` 10004; over
  12,288 bytes 80002.

The fake's choices where the pages are silent:

- Imported accounts: valid robots, users (``create_user``, or a simulated user's first
  message) and the app admin. A deleted robot is not one (90008 / 20003 / 10019).
- Bad ``SyncOtherMachine`` / ``MsgSeq`` / control words / ``CloudCustomData`` /
  ``OfflinePushInfo`` in ``sendmsg`` answer 90001 (the message list's "could not read
  the request"); an empty ``MsgBody`` answers 90002 ("bad MsgBody"). Other ``MsgType``
  values than text and custom are stored as they are (the page's list is open-ended).
- A message's size is its ``MsgBody`` as compact JSON (UTF-8, non-ASCII not escaped)
  plus the UTF-8 bytes of ``CloudCustomData``: 12,288 bytes pass, one more is 80002 (the
  usage-limits page's 12 KB, not the older 8 KB). A modification is measured as it
  would leave the message.
- The codes of the modify APIs are not documented: every refusal is 10004 ("invalid
  parameter", the convention of every page), a live group 10007 ("no permission"), the
  size 80002 as for sending.
- ``sendmsg`` de-duplication: the same sender, recipient, ``MsgSeq`` (or none),
  ``MsgRandom`` and ``MsgBody`` within 120 s of the first (the window ``(t-120, t]``)
  is a repeat; ``CloudCustomData`` is not part of the key, the recipient is (a message to
  someone else is not a repeat). A repeat answers OK with the first's ``MsgTime`` and
  ``MsgKey``, stores nothing and fires no callback.
- ``send_group_msg`` de-duplication: the same ``Random`` in the same group within 300 s
  of the first is dropped: OK with the first's ``MsgSeq`` and ``MsgTime``, nothing
  stored. Only stored messages are remembered (a refused send is no first).
- The 40/s group budget counts every ``send_group_msg`` arrival naming an existing group
  (refused ones included, as the per-API limit counts every arrival), and only those:
  ``modify_group_msg`` does not count. It is checked before the body.
- The sender of a group message need not be a member (not documented: not checked).
  Live groups store ``OnlineOnlyFlag`` 0 whatever was sent.
- ``ForbidCallbackControl`` forbids the app's before/after-send callbacks, not the
  robot's: ``Bot.OnC2CMessage`` fires anyway. A REST ``send_group_msg`` fires no
  ``Bot.OnGroupMessage`` (the page documents no @-mention field for it); only a
  simulated user's mention does.
- Times: ``MsgTime`` and ``EventTime`` come from the wall clock (``wall_clock``), the
  windows from the fake's ``clock``. A ``MsgSeq`` left out of ``sendmsg`` is numbered by
  the fake (1, 2, ... over the app). ``MsgKey`` is ``"{n}_{MsgRandom}_{MsgTime}"`` with
  ``n`` unique in the app. ``MsgLifeTime`` 0 makes the callback's ``OnlineOnlyFlag`` 1.
  ``MsgId`` is ``"{MsgSeq}-{MsgTime}-{MsgRandom}"``; ``CloudCustomData`` is ``""`` in a
  callback when the message has none.
- Nothing here is forgotten while the fake lives (``keep_history`` caps the call log, not
  conversations); de-duplication memories are pruned once their window has passed.
- Simulated users (``user_message`` / ``user_mention``, the Python face only): the user is
  imported on first use (a robot may speak as one); the message is stored first, then
  its callback is owed. A mention's text is ``"@{robot} "`` per robot, then the text;
  one ``Bot.OnGroupMessage`` lists every robot in ``AtRobots_Account``; the robots must
  be in the group (pinned to a live group, members of an ordinary one) and the user
  joins an ordinary group by speaking; ``Operator_Account`` is the user; ``TopicId`` is
  sent for a Community group when a topic is given. The ``Random`` / ``MsgRandom`` of a
  simulated message is a uint32 drawn deterministically by the fake.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard, TypeVar

from ._answer import OK, Answer
from ._records import (
    CallbackEvent,
    Revision,
    StoredGroupMessage,
    StoredMessage,
    c2c_document,
    group_document,
    joined_text,
)
from ._window import SlidingWindow

__all__ = [
    "GROUP_TYPES",
    "LIVE_GROUP_TYPE",
    "MAX_MESSAGE_BYTES",
    "PLATFORMS",
    "Messages",
]

MAX_UINT32 = 0xFFFFFFFF
MAX_MSG_LIFETIME = 604_800
MAX_MESSAGE_BYTES = 12 * 1024  # "a message is at most 12 KB" (usage-limits page)
C2C_DEDUP_SECONDS = 120.0
GROUP_DEDUP_SECONDS = 300.0
GROUP_RATE = 40  # messages per second per group
RATE_WINDOW = 1.0
FORBID_CALLBACKS = frozenset({"ForbidBeforeSendMsgCallback", "ForbidAfterSendMsgCallback"})
C2C_SEND_CONTROL = frozenset({"NoUnread", "NoLastMsg", "WithMuteNotifications"})
GROUP_SEND_CONTROL = frozenset({"NoUnread", "NoLastMsg"})
MSG_PRIORITIES = frozenset({"High", "Normal", "Low", "Lowest"})
_FORBID_WORDS = "ForbidBeforeSendMsgCallback, ForbidAfterSendMsgCallback"
# Ordinary group types (the newer names and the older ones): live groups are AVChatRoom.
GROUP_TYPES = frozenset({"Private", "Work", "Public", "ChatRoom", "Meeting", "Community"})
LIVE_GROUP_TYPE = "AVChatRoom"
COMMUNITY = "Community"
PLATFORMS = frozenset({"RESTAPI", "Web", "Android", "iOS", "Windows", "Mac", "iPad", "Unknown"})
ROBOT_PREFIX = "@RBT#"
TEXT = "TIMTextElem"
CUSTOM = "TIMCustomElem"
C2C_COMMAND = "Bot.OnC2CMessage"
GROUP_COMMAND = "Bot.OnGroupMessage"
_PRUNE_AT = 256


@dataclass(slots=True)
class _Group:
    type: str
    members: dict[str, None] = field(default_factory=dict)


@dataclass(slots=True)
class _GroupLog:
    messages: list[StoredGroupMessage] = field(default_factory=list)
    window: SlidingWindow = field(default_factory=lambda: SlidingWindow(RATE_WINDOW))
    # Random -> (clock time of the first, MsgSeq, MsgTime), oldest first.
    seen: OrderedDict[int, tuple[float, int, int]] = field(default_factory=OrderedDict)


def _is_uint32(value: object) -> TypeGuard[int]:
    return type(value) is int and 0 <= value <= MAX_UINT32


def _nonempty_str(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def _words(value: object, allowed: frozenset[str]) -> bool:
    return isinstance(value, list) and all(word in allowed for word in value)


def _json_bytes(value: object) -> int:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def message_bytes(body: object, custom: str | None) -> int:
    """A message's size: ``MsgBody`` as compact JSON plus ``CloudCustomData``, UTF-8 bytes."""
    size = _json_bytes(body)
    if custom is not None:
        size += len(custom.encode("utf-8", "surrogatepass"))
    return size


def body_problem(body: object) -> tuple[str, str] | None:
    """What is wrong with a ``MsgBody``: ``("array" | "empty" | "element", why)``, or None."""
    if not isinstance(body, list):
        return "array", "MsgBody must be an array"
    if not body:
        return "empty", "MsgBody must hold at least one element"
    for index, element in enumerate(body):
        where = f"MsgBody[{index}]"
        if not isinstance(element, dict):
            return "element", f"{where} must be an object"
        msg_type, content = element.get("MsgType"), element.get("MsgContent")
        if not isinstance(msg_type, str) or not isinstance(content, dict):
            return "element", f"{where} needs a MsgType string and a MsgContent object"
        if msg_type == TEXT and not isinstance(content.get("Text"), str):
            return "element", f"{where}: a TIMTextElem needs a Text string"
        if msg_type == CUSTOM:
            for name in ("Data", "Desc", "Ext"):
                if name in content and not isinstance(content[name], str):
                    return "element", f"{where}: TIMCustomElem {name} must be a string"
    return None


_C2C_BODY_CODES = {"array": 90007, "empty": 90002, "element": 90010}


class Messages:
    """Users, ordinary groups, conversations and group messages, with the four APIs' rules.

    ``is_robot`` says whether an id is a valid robot; ``live_groups`` is the state's own
    mapping of live group ids (read, never changed here).
    """

    def __init__(
        self,
        *,
        admin: str,
        is_robot: Callable[[object], bool],
        live_groups: Mapping[str, Mapping[str, None]],
        group_id_is_valid: Callable[[str], bool],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.admin = admin
        self._is_robot = is_robot
        self._live_groups = live_groups
        self._group_id_is_valid = group_id_is_valid
        self.clock = clock
        self.wall_clock = wall_clock
        self._users: dict[str, None] = {}
        self._groups: dict[str, _Group] = {}
        self._group_logs: dict[str, _GroupLog] = {}
        # Conversations keyed by the sorted pair of accounts; MsgKey -> (pair, index).
        self._conversations: dict[tuple[str, str], list[StoredMessage]] = {}
        self._by_key: dict[str, tuple[tuple[str, str], int]] = {}
        # Dedup key -> (clock time of the first, MsgTime, MsgKey), oldest first.
        self._c2c_seen: OrderedDict[tuple[Any, ...], tuple[float, int, str]] = OrderedDict()
        self._numbers = itertools.count(1)
        self._c2c_seqs = itertools.count(1)
        self._outbox: list[CallbackEvent] = []

    # --- accounts and groups (the Python face) ---

    def is_account(self, user_id: object) -> bool:
        return isinstance(user_id, str) and (
            user_id in self._users or user_id == self.admin or self._is_robot(user_id)
        )

    def create_user(self, user_id: str) -> None:
        if not _nonempty_str(user_id):
            raise ValueError("user_id must be a non-empty string")
        if user_id.startswith(ROBOT_PREFIX):
            raise ValueError(f"{user_id!r} is a robot id: create robots with create_robot")
        self._users.setdefault(user_id, None)

    def users(self) -> list[str]:
        return list(self._users)

    def _sender(self, user_id: str) -> None:
        """A simulated user's account: a valid robot, or a user (imported if new)."""
        if self._is_robot(user_id):
            return
        self.create_user(user_id)

    def has_group(self, group_id: str) -> bool:
        return group_id in self._groups

    def create_group(self, group_id: str, group_type: str, members: Sequence[str]) -> None:
        if not isinstance(group_id, str) or not self._group_id_is_valid(group_id):
            raise ValueError(f"invalid group id {group_id!r}")
        if group_type == LIVE_GROUP_TYPE:
            raise ValueError("live groups (AVChatRoom) are made with create_live_group")
        if group_type not in GROUP_TYPES:
            raise ValueError(f"group type must be one of {', '.join(sorted(GROUP_TYPES))}")
        if group_id in self._live_groups:
            raise ValueError(f"{group_id!r} is a live group")
        group = self._groups.get(group_id)
        if group is not None and group.type != group_type:
            raise ValueError(f"{group_id!r} exists as a {group.type} group")
        self._check_members(members)
        if group is None:
            group = self._groups[group_id] = _Group(group_type)
        self._join(group, members)

    def _check_members(self, members: Sequence[str]) -> None:
        if isinstance(members, str):
            raise ValueError("members must be a list of account ids, not a string")
        for member in members:
            if not _nonempty_str(member):
                raise ValueError(f"member {member!r} is not an account id")
            if member.startswith(ROBOT_PREFIX) and not self._is_robot(member):
                raise ValueError(f"{member!r} is not a valid robot")

    def _join(self, group: _Group, members: Sequence[str]) -> None:
        for member in members:
            self._sender(member)
            group.members[member] = None

    def add_group_members(self, group_id: str, members: Sequence[str]) -> None:
        group = self._groups[group_id]
        self._check_members(members)
        self._join(group, members)

    def group_members(self, group_id: str) -> list[str]:
        return list(self._groups[group_id].members)

    def dismiss_group(self, group_id: str) -> None:
        del self._groups[group_id]
        self.forget_group(group_id)

    def forget_group(self, group_id: str) -> None:
        """Drop a dismissed group's messages (a group made again starts afresh)."""
        self._group_logs.pop(group_id, None)

    # --- inspection ---

    def transcript(self, a: str, b: str) -> list[StoredMessage]:
        return copy.deepcopy(self._conversations.get(_pair(a, b), []))

    def group_messages(self, group_id: str) -> list[StoredGroupMessage]:
        if group_id not in self._groups and group_id not in self._live_groups:
            raise KeyError(group_id)
        log = self._group_logs.get(group_id)
        return copy.deepcopy(log.messages) if log else []

    def take_events(self) -> list[CallbackEvent]:
        events, self._outbox = self._outbox, []
        return events

    def snapshot(self) -> dict[str, Any]:
        """Users, ordinary groups, conversations and group messages as a JSON-ready document."""
        return {
            "users": self.users(),
            "groups": {
                gid: {"type": group.type, "members": list(group.members)}
                for gid, group in self._groups.items()
            },
            "conversations": [
                {"accounts": list(pair), "messages": [c2c_document(m) for m in messages]}
                for pair, messages in self._conversations.items()
            ],
            "group_messages": {
                gid: [group_document(m) for m in log.messages]
                for gid, log in self._group_logs.items()
                if log.messages
            },
        }

    # --- storing ---

    def _store_c2c(
        self,
        *,
        sender: str,
        recipient: str,
        body: list[dict[str, Any]],
        custom: str | None,
        random: int,
        msg_seq: int | None,
        platform: str,
    ) -> StoredMessage:
        wall = self.wall_clock()
        msg_time = int(wall)
        number = next(self._numbers)
        message = StoredMessage(
            sender=sender,
            recipient=recipient,
            text=joined_text(body),
            body=body,
            cloud_custom_data=custom,
            msg_key=f"{number}_{random}_{msg_time}",
            msg_seq=next(self._c2c_seqs) & MAX_UINT32 if msg_seq is None else msg_seq,
            msg_time=msg_time,
            random=random,
            platform=platform,
            revisions=(Revision(wall, joined_text(body), body, custom),),
        )
        pair = _pair(sender, recipient)
        conversation = self._conversations.setdefault(pair, [])
        self._by_key[message.msg_key] = (pair, len(conversation))
        conversation.append(message)
        return message

    # --- hooks for the stream rules (:mod:`._streams`) ---

    def store_c2c_reply(
        self, sender: str, recipient: str, body: list[dict[str, Any]]
    ) -> StoredMessage:
        """Store a one-to-one message another API sends (a stream's first piece): no
        de-duplication, no callback, a ``MsgRandom`` drawn by the fake."""
        random = next(self._numbers) * 2654435761 & MAX_UINT32
        return self._store_c2c(
            sender=sender,
            recipient=recipient,
            body=body,
            custom=None,
            random=random,
            msg_seq=None,
            platform="RESTAPI",
        )

    def c2c_message(self, msg_key: str) -> StoredMessage:
        """The stored one-to-one message with ``msg_key`` (KeyError if none), not a copy."""
        pair, index = self._by_key[msg_key]
        return self._conversations[pair][index]

    def replace_c2c(self, message: StoredMessage) -> None:
        """Put ``message`` in the place of the stored one with its ``msg_key``."""
        pair, index = self._by_key[message.msg_key]
        self._conversations[pair][index] = message

    def _c2c_event(
        self, message: StoredMessage, *, online_only: int, msg_id: str | None = None
    ) -> CallbackEvent:
        body = {
            "CallbackCommand": C2C_COMMAND,
            "From_Account": message.sender,
            "To_Account": message.recipient,
            "MsgSeq": message.msg_seq,
            "MsgRandom": message.random,
            "MsgTime": message.msg_time,
            "MsgKey": message.msg_key,
            "MsgId": msg_id or f"{message.msg_seq}-{message.msg_time}-{message.random}",
            "OnlineOnlyFlag": online_only,
            "SendMsgResult": 0,
            "ErrorInfo": "send msg succeed",
            "MsgBody": copy.deepcopy(message.body),
            "CloudCustomData": message.cloud_custom_data or "",
            "EventTime": int(self.wall_clock() * 1000),
        }
        return CallbackEvent(C2C_COMMAND, body, message.platform)

    def _group_log(self, group_id: str) -> _GroupLog:
        log = self._group_logs.get(group_id)
        if log is None:
            log = self._group_logs[group_id] = _GroupLog()
        return log

    def _store_group(
        self,
        group_id: str,
        *,
        sender: str,
        body: list[dict[str, Any]],
        custom: str | None,
        random: int,
        online_only: int,
        mentions: tuple[str, ...] = (),
        topic_id: str | None = None,
        platform: str = "RESTAPI",
    ) -> StoredGroupMessage:
        log = self._group_log(group_id)
        wall = self.wall_clock()
        message = StoredGroupMessage(
            group_id=group_id,
            msg_seq=len(log.messages) + 1,
            sender=sender,
            text=joined_text(body),
            body=body,
            cloud_custom_data=custom,
            random=random,
            msg_time=int(wall),
            mentions=mentions,
            online_only=0 if group_id in self._live_groups else online_only,
            topic_id=topic_id,
            platform=platform,
            revisions=(Revision(wall, joined_text(body), body, custom),),
        )
        log.messages.append(message)
        return message

    # --- simulated users (the Python face) ---

    def user_message(
        self,
        user: str,
        robot: str,
        text: str,
        *,
        platform: str,
        cloud_custom_data: str | None,
    ) -> CallbackEvent:
        """Store a user's message to a robot; the ``Bot.OnC2CMessage`` Chat would send."""
        _check_platform(platform)
        if not self._is_robot(robot):
            raise ValueError(f"{robot!r} is not a valid robot")
        if not _nonempty_str(user):
            raise ValueError("user must be a non-empty string")
        if user.startswith(ROBOT_PREFIX) and not self._is_robot(user):
            raise ValueError(f"{user!r} is not a valid robot")
        if not isinstance(text, str):
            raise ValueError("text must be a string")
        self._sender(user)
        body = [{"MsgType": TEXT, "MsgContent": {"Text": text}}]
        random = next(self._numbers) * 2654435761 & MAX_UINT32
        message = self._store_c2c(
            sender=user,
            recipient=robot,
            body=body,
            custom=cloud_custom_data,
            random=random,
            msg_seq=None,
            platform=platform,
        )
        return self._c2c_event(message, online_only=0)

    def user_mention(
        self,
        group_id: str,
        user: str,
        robots: Sequence[str],
        text: str,
        *,
        platform: str,
        cloud_custom_data: str | None,
        topic_id: str | None,
    ) -> CallbackEvent:
        """Store a user's @-mention of robots in a group; the ``Bot.OnGroupMessage``."""
        _check_platform(platform)
        live = group_id in self._live_groups
        group = self._groups.get(group_id)
        if not live and group is None:
            raise KeyError(f"no group {group_id!r}: create_group or create_live_group first")
        group_type = LIVE_GROUP_TYPE if group is None else group.type
        if isinstance(robots, str) or not robots:
            raise ValueError("robots must be a non-empty list of robot ids")
        members = self._live_groups[group_id] if group is None else group.members
        for robot in robots:
            if not self._is_robot(robot):
                raise ValueError(f"{robot!r} is not a valid robot")
            if robot not in members:
                raise ValueError(f"{robot!r} is not in group {group_id!r}")
        if topic_id is not None and group_type != COMMUNITY:
            raise ValueError("topic_id is for Community groups only")
        if not _nonempty_str(user) or (user.startswith(ROBOT_PREFIX) and not self._is_robot(user)):
            raise ValueError(f"{user!r} is not a user or a valid robot")
        if not isinstance(text, str):
            raise ValueError("text must be a string")
        if group is not None:
            self._join(group, [user])
        else:
            self._sender(user)
        full = "".join(f"@{robot} " for robot in robots) + text
        body = [{"MsgType": TEXT, "MsgContent": {"Text": full}}]
        random = next(self._numbers) * 2654435761 & MAX_UINT32
        message = self._store_group(
            group_id,
            sender=user,
            body=body,
            custom=cloud_custom_data,
            random=random,
            online_only=0,
            mentions=tuple(robots),
            topic_id=topic_id,
            platform=platform,
        )
        event: dict[str, Any] = {
            "CallbackCommand": GROUP_COMMAND,
            "GroupId": group_id,
            "Type": group_type,
            "From_Account": user,
            "Operator_Account": user,
            "Random": message.random,
            "MsgSeq": message.msg_seq,
            "MsgTime": message.msg_time,
            "OnlineOnlyFlag": message.online_only,
            "MsgBody": copy.deepcopy(body),
            "AtRobots_Account": list(robots),
            "CloudCustomData": cloud_custom_data or "",
        }
        if group_type == COMMUNITY and topic_id is not None:
            event["TopicId"] = topic_id
        event["EventTime"] = int(self.wall_clock() * 1000)
        return CallbackEvent(GROUP_COMMAND, event, platform)

    # --- the endpoints ---

    def send_c2c(self, body: dict[str, Any], arrival: float) -> Answer:
        to_account = body.get("To_Account")
        if not _nonempty_str(to_account):
            return Answer(90003, "To_Account is missing")
        random = body.get("MsgRandom")
        if not _is_uint32(random):
            return Answer(90005, "MsgRandom is missing or not a uint32")
        msg_body: Any = body.get("MsgBody")
        problem = body_problem(msg_body)
        if problem is not None:
            return Answer(_C2C_BODY_CODES[problem[0]], problem[1])
        from_account = body.get("From_Account", self.admin)
        if not self.is_account(from_account):
            return Answer(90008, "From_Account is not an imported account")
        if not self.is_account(to_account):
            return Answer(20003, "To_Account is not an imported account")
        lifetime = body.get("MsgLifeTime")
        if "MsgLifeTime" in body and (
            type(lifetime) is not int or not 0 <= lifetime <= MAX_MSG_LIFETIME
        ):
            return Answer(90026, "MsgLifeTime must be 0 to 604800 seconds")
        refusal = self._c2c_options(body)
        if refusal is not None:
            return Answer(90001, refusal)
        custom = body.get("CloudCustomData")
        if message_bytes(msg_body, custom) > MAX_MESSAGE_BYTES:
            return Answer(80002, "the message is longer than 12 KB")
        msg_seq = body.get("MsgSeq")
        now = self.clock()
        key = (from_account, to_account, msg_seq, random, json.dumps(msg_body, sort_keys=True))
        _prune(self._c2c_seen, now - C2C_DEDUP_SECONDS)
        seen = self._c2c_seen.get(key)
        if seen is not None and seen[0] > arrival - C2C_DEDUP_SECONDS:
            return Answer(0, "", {"MsgTime": seen[1], "MsgKey": seen[2]})
        message = self._store_c2c(
            sender=from_account,
            recipient=to_account,
            body=msg_body,
            custom=custom,
            random=random,
            msg_seq=msg_seq,
            platform="RESTAPI",
        )
        self._c2c_seen[key] = (arrival, message.msg_time, message.msg_key)
        self._c2c_seen.move_to_end(key)
        if self._is_robot(to_account):
            self._outbox.append(self._c2c_event(message, online_only=int(lifetime == 0)))
        return Answer(0, "", {"MsgTime": message.msg_time, "MsgKey": message.msg_key})

    @staticmethod
    def _c2c_options(body: dict[str, Any]) -> str | None:
        sync = body.get("SyncOtherMachine", 1)
        if type(sync) is not int or sync not in (1, 2):
            return "SyncOtherMachine must be 1 or 2"
        if "MsgSeq" in body and not _is_uint32(body["MsgSeq"]):
            return "MsgSeq must be a uint32"
        if "ForbidCallbackControl" in body and not _words(
            body["ForbidCallbackControl"], FORBID_CALLBACKS
        ):
            return f"ForbidCallbackControl takes {_FORBID_WORDS}"
        if "SendMsgControl" in body and not _words(body["SendMsgControl"], C2C_SEND_CONTROL):
            return "SendMsgControl takes NoUnread, NoLastMsg, WithMuteNotifications"
        return _common_options(body)

    def _group_lookup(self, body: dict[str, Any]) -> tuple[Answer | None, str]:
        group_id = body.get("GroupId")
        if not isinstance(group_id, str):
            return Answer(10004, "GroupId must be a string"), ""
        if not self._group_id_is_valid(group_id):
            return Answer(10015, "invalid group id"), ""
        if group_id not in self._groups and group_id not in self._live_groups:
            return Answer(10010, "group does not exist or was dismissed"), ""
        return None, group_id

    def send_group(self, body: dict[str, Any], arrival: float) -> Answer:
        refusal, group_id = self._group_lookup(body)
        if refusal is not None:
            return refusal
        log = self._group_log(group_id)
        now = self.clock()
        in_window = log.window.add(arrival)
        if len(log.window) > _PRUNE_AT:
            log.window.discard_through(now - RATE_WINDOW)
        if in_window > GROUP_RATE:
            return Answer(10023, "more than 40 messages a second in this group")
        random = body.get("Random")
        if not _is_uint32(random):
            return Answer(10004, "Random is missing or not a uint32")
        msg_body: Any = body.get("MsgBody")
        problem = body_problem(msg_body)
        if problem is not None:
            return Answer(10004, problem[1])
        from_account = body.get("From_Account", self.admin)
        if not isinstance(from_account, str):
            return Answer(10004, "From_Account must be a string")
        if not self.is_account(from_account):
            return Answer(10019, "From_Account does not exist")
        option = self._group_options(body)
        if option is not None:
            return Answer(10004, option)
        custom = body.get("CloudCustomData")
        if message_bytes(msg_body, custom) > MAX_MESSAGE_BYTES:
            return Answer(80002, "the message is longer than 12 KB")
        _prune(log.seen, now - GROUP_DEDUP_SECONDS)
        seen = log.seen.get(random)
        if seen is not None and seen[0] > arrival - GROUP_DEDUP_SECONDS:
            return Answer(0, "", {"MsgTime": seen[2], "MsgSeq": seen[1]})
        message = self._store_group(
            group_id,
            sender=from_account,
            body=msg_body,
            custom=custom,
            random=random,
            online_only=body.get("OnlineOnlyFlag", 0),
        )
        log.seen[random] = (arrival, message.msg_seq, message.msg_time)
        log.seen.move_to_end(random)
        return Answer(0, "", {"MsgTime": message.msg_time, "MsgSeq": message.msg_seq})

    @staticmethod
    def _group_options(body: dict[str, Any]) -> str | None:
        if "MsgPriority" in body and body["MsgPriority"] not in MSG_PRIORITIES:
            return "MsgPriority must be High, Normal, Low or Lowest"
        flag = body.get("OnlineOnlyFlag", 0)
        if type(flag) is not int or flag not in (0, 1):
            return "OnlineOnlyFlag must be 0 or 1"
        if "SendMsgControl" in body and not _words(body["SendMsgControl"], GROUP_SEND_CONTROL):
            return "SendMsgControl takes NoUnread, NoLastMsg"
        if "ForbidCallbackControl" in body and not _words(
            body["ForbidCallbackControl"], FORBID_CALLBACKS
        ):
            return f"ForbidCallbackControl takes {_FORBID_WORDS}"
        return _common_options(body)

    def modify_c2c(self, body: dict[str, Any]) -> Answer:
        for name in ("From_Account", "To_Account", "MsgKey"):
            if not _nonempty_str(body.get(name)):
                return Answer(10004, f"{name} must be a non-empty string")
        refusal = _modification_problem(body)
        if refusal is not None:
            return Answer(10004, refusal)
        where = self._by_key.get(body["MsgKey"])
        message = None if where is None else self._conversations[where[0]][where[1]]
        if (
            where is None
            or message is None
            or (message.sender, message.recipient) != (body["From_Account"], body["To_Account"])
        ):
            return Answer(10004, "no message with this MsgKey from From_Account to To_Account")
        revised = _revise(message, body, self.wall_clock())
        if revised is None:
            return Answer(80002, "the message is longer than 12 KB")
        self._conversations[where[0]][where[1]] = revised
        return OK

    def modify_group(self, body: dict[str, Any]) -> Answer:
        refusal, group_id = self._group_lookup(body)
        if refusal is not None:
            return refusal
        if group_id in self._live_groups:
            return Answer(10007, "messages of live (AVChatRoom) groups cannot be modified")
        msg_seq = body.get("MsgSeq")
        if not _is_uint32(msg_seq):
            return Answer(10004, "MsgSeq is missing or not a uint32")
        problem = _modification_problem(body)
        if problem is not None:
            return Answer(10004, problem)
        log = self._group_logs.get(group_id)
        if log is None or not 1 <= msg_seq <= len(log.messages):
            return Answer(10004, "no message with this MsgSeq in the group")
        revised = _revise(log.messages[msg_seq - 1], body, self.wall_clock())
        if revised is None:
            return Answer(80002, "the message is longer than 12 KB")
        log.messages[msg_seq - 1] = revised
        return OK


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def _prune(seen: OrderedDict[Any, Any], floor: float) -> None:
    """Forget first sends at or before ``floor`` (entries are kept oldest first)."""
    while seen:
        key, value = next(iter(seen.items()))
        if value[0] > floor:
            return
        del seen[key]


def _check_platform(platform: str) -> None:
    if platform not in PLATFORMS:
        raise ValueError(f"platform must be one of {', '.join(sorted(PLATFORMS))}")


def _common_options(body: dict[str, Any]) -> str | None:
    if "CloudCustomData" in body and not isinstance(body["CloudCustomData"], str):
        return "CloudCustomData must be a string"
    if "OfflinePushInfo" in body and not isinstance(body["OfflinePushInfo"], dict):
        return "OfflinePushInfo must be an object"
    return None


def _modification_problem(body: dict[str, Any]) -> str | None:
    if "MsgBody" not in body and "CloudCustomData" not in body:
        return "give MsgBody or CloudCustomData (or both)"
    if "MsgBody" in body:
        problem = body_problem(body["MsgBody"])
        if problem is not None:
            return problem[1]
    if "CloudCustomData" in body and not isinstance(body["CloudCustomData"], str):
        return "CloudCustomData must be a string"
    return None


_Stored = TypeVar("_Stored", StoredMessage, StoredGroupMessage)


def _revise(message: _Stored, body: dict[str, Any], wall: float) -> _Stored | None:
    """``message`` with the modification applied and recorded, or None if it is too long."""
    msg_body = body.get("MsgBody", message.body)
    custom = body.get("CloudCustomData", message.cloud_custom_data)
    if message_bytes(msg_body, custom) > MAX_MESSAGE_BYTES:
        return None
    text = joined_text(msg_body)
    revision = Revision(wall, text, msg_body, custom)
    return replace(
        message,
        text=text,
        body=msg_body,
        cloud_custom_data=custom,
        revisions=(*message.revisions, revision),
    )
