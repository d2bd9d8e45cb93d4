"""How a streamed reply's text becomes calls: the "wire" of each kind of stream.

A one-to-one stream (:class:`OneToOne`) sends pieces through ``send_stream_msg``, each
appended to the message under the ``MsgKey`` its first answered; an update keeps its
last character back, so the call that finishes always carries text (``Chunk`` is a
required string, and whether an empty one is taken is not documented). A group stream
(:class:`Group`) sends its first text as a group message, kept for its retries (the same
``Random``), then replaces it with the text so far (``modify_group_msg``). Which call is
due and when is the :class:`~tencent_chat_robots.StreamReply`'s to decide.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from ._calls import Call
from ._messages import SentGroupMessage

__all__ = ["Group", "OneToOne", "Wire", "in_group", "one_to_one"]


class Wire(Protocol):
    """How a stream's text becomes calls: one-to-one pieces, or a group message replaced."""

    finished: bool  # the last call answered ended the stream with all its text

    @property
    def msg_key(self) -> str | None:
        """A one-to-one stream's ``MsgKey``, once its first piece was answered."""

    @property
    def msg_seq(self) -> int | None:
        """A group stream's message's ``MsgSeq``, once it was sent."""

    def where(self) -> str:
        """Where the stream goes, for a repr."""

    def needs_call(self, written: int, acked: int, finish: bool) -> bool:
        """Whether a call is due for ``written`` characters, ``acked`` of them answered."""

    def next_call(self, text: str, acked: int, finish: bool) -> tuple[Call[Any], int]:
        """The next call, and how much of ``text`` it covers."""

    def acknowledged(self, result: Any, complete: bool) -> None:
        """The last call was answered with ``result``; ``complete``: it ended the stream."""

    def abandon(self, suffix: str) -> Call[Any] | None:
        """A call ending the stream after a failure, adding only ``suffix`` (it cannot
        repeat a piece), if one is needed."""


@attrs.define(slots=True)
class OneToOne:
    robot: str
    user: str
    msg_key: str | None = None
    finished: bool = False
    msg_seq: None = None

    def needs_call(self, written: int, acked: int, finish: bool) -> bool:
        if finish:  # a stream the user sees takes a call to end, even with nothing new
            return written > acked or self.msg_key is not None
        if self.msg_key is None:
            return written > acked  # the first text: at once
        return written - 1 > acked  # an update keeps its last character back

    def next_call(self, text: str, acked: int, finish: bool) -> tuple[Call[Any], int]:
        # Not finishing: all but the last character, so that the finishing call has
        # text (the first call sends one character if that is all there is).
        end = len(text) if finish else max(len(text) - 1, acked + (self.msg_key is None))
        piece = Call.send_stream_chunk(
            self.robot, self.user, text[acked:end], msg_key=self.msg_key, finish=finish
        )
        return piece, end

    def acknowledged(self, result: Any, complete: bool) -> None:
        self.msg_key = result
        self.finished = complete

    def where(self) -> str:
        return f"user={self.user!r}"

    def abandon(self, suffix: str) -> Call[Any] | None:
        if self.msg_key is None or self.finished:
            return None
        return Call.send_stream_chunk(
            self.robot, self.user, suffix, msg_key=self.msg_key, finish=True
        )


@attrs.define(slots=True)
class Group:
    group_id: str
    robot: str
    msg_seq: int | None = None
    finished: bool = False
    msg_key: None = None
    first: tuple[Call[Any], int] | None = None  # kept for its retries: the same Random

    def needs_call(self, written: int, acked: int, finish: bool) -> bool:
        return written > acked  # the message then shows it all: finishing needs no call

    def next_call(self, text: str, acked: int, finish: bool) -> tuple[Call[Any], int]:
        if self.msg_seq is not None:
            return Call.modify_group_message(self.group_id, self.msg_seq, body=text), len(text)
        if self.first is None:
            sent = Call.send_group_message(self.group_id, text, from_account=self.robot)
            self.first = (sent, len(text))
        return self.first

    def acknowledged(self, result: Any, complete: bool) -> None:
        if isinstance(result, SentGroupMessage):
            self.msg_seq = result.msg_seq
        self.finished = complete

    def where(self) -> str:
        return f"group_id={self.group_id!r}"

    def abandon(self, suffix: str) -> Call[Any] | None:
        return None  # the message shows what was delivered; there is nothing to end


def one_to_one(robot: str, user: str) -> OneToOne:
    """The wire of a one-to-one stream (its accounts checked now)."""
    Call.send_stream_chunk(robot, user, "", finish=True)
    return OneToOne(robot, user)


def in_group(group_id: str, robot: str) -> Group:
    """The wire of a group stream (its group and sender checked now)."""
    Call.send_group_message(group_id, "-", from_account=robot)
    return Group(group_id, robot)
