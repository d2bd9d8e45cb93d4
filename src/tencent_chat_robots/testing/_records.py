"""The fake's stored messages, as tests see them, and the callbacks it owes the app.

A message keeps every version of itself (``revisions``): the first as sent, then one per
modification or accepted stream piece, so a reply that grows (a stream) reads as the
texts it went through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CallbackEvent",
    "Revision",
    "StoredGroupMessage",
    "StoredMessage",
    "c2c_document",
    "group_document",
    "joined_text",
]

TEXT = "TIMTextElem"


@dataclass(frozen=True, slots=True)
class Revision:
    """One version of a message: what it said from ``at`` (wall clock, seconds) on."""

    at: float
    text: str
    body: list[dict[str, Any]]
    cloud_custom_data: str | None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A one-to-one message as the fake stored it (the latest version's fields on top).

    ``platform``: ``"RESTAPI"`` for a ``sendmsg`` or a stream, else the simulated user's.
    ``revisions``: every version, the first as sent; a modification adds one, and so does
    each accepted piece of a stream (its ``text`` the whole text so far, ``at`` the wall
    clock of the call). ``stream``: ``None`` for a message not sent by
    ``send_stream_msg``, else the stream's state, ``"open"``, ``"finished"`` (a call
    with ``Finish: 1`` was accepted) or ``"expired"`` (ended after 15 s without an
    accepted piece). ``stream_arrivals``: the arrival times (the fake's ``clock``,
    sorted) of every call naming the stream, accepted or refused, as its 5-a-second
    limit counted them (empty for other messages).
    """

    sender: str
    recipient: str
    text: str
    body: list[dict[str, Any]]
    cloud_custom_data: str | None
    msg_key: str
    msg_seq: int
    msg_time: int
    random: int
    platform: str
    revisions: tuple[Revision, ...]
    stream: str | None = None
    stream_arrivals: tuple[float, ...] = ()

    @property
    def modified(self) -> int:
        """How many times the message was replaced since it was sent (a stream's later
        pieces included)."""
        return len(self.revisions) - 1

    @property
    def texts(self) -> list[str]:
        """The text of each version, oldest first."""
        return [revision.text for revision in self.revisions]


@dataclass(frozen=True, slots=True)
class StoredGroupMessage:
    """A group message as the fake stored it; ``mentions``: the robots @-mentioned."""

    group_id: str
    msg_seq: int
    sender: str
    text: str
    body: list[dict[str, Any]]
    cloud_custom_data: str | None
    random: int
    msg_time: int
    mentions: tuple[str, ...]
    online_only: int
    topic_id: str | None
    platform: str
    revisions: tuple[Revision, ...]

    @property
    def modified(self) -> int:
        """How many times the message was replaced since it was sent."""
        return len(self.revisions) - 1

    @property
    def texts(self) -> list[str]:
        """The text of each version, oldest first."""
        return [revision.text for revision in self.revisions]


@dataclass(frozen=True, slots=True)
class CallbackEvent:
    """A callback Chat owes the app: its command, body and ``OptPlatform``."""

    command: str
    body: dict[str, Any]
    platform: str


def joined_text(body: Sequence[Mapping[str, Any]]) -> str:
    """The texts of a ``MsgBody``'s ``TIMTextElem`` elements, joined in order."""
    return "".join(
        element["MsgContent"]["Text"] for element in body if element.get("MsgType") == TEXT
    )


def _revisions_document(revisions: tuple[Revision, ...]) -> list[dict[str, Any]]:
    return [{"at": r.at, "text": r.text} for r in revisions]


def c2c_document(message: StoredMessage) -> dict[str, Any]:
    return {
        "sender": message.sender,
        "recipient": message.recipient,
        "text": message.text,
        "body": message.body,
        "cloud_custom_data": message.cloud_custom_data,
        "msg_key": message.msg_key,
        "msg_seq": message.msg_seq,
        "msg_time": message.msg_time,
        "random": message.random,
        "platform": message.platform,
        "revisions": _revisions_document(message.revisions),
        "stream": message.stream,
        "stream_arrivals": list(message.stream_arrivals),
    }


def group_document(message: StoredGroupMessage) -> dict[str, Any]:
    return {
        "msg_seq": message.msg_seq,
        "sender": message.sender,
        "text": message.text,
        "body": message.body,
        "cloud_custom_data": message.cloud_custom_data,
        "random": message.random,
        "msg_time": message.msg_time,
        "mentions": list(message.mentions),
        "online_only": message.online_only,
        "topic_id": message.topic_id,
        "platform": message.platform,
        "revisions": _revisions_document(message.revisions),
    }
