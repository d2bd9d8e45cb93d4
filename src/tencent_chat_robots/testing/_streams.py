"""The rules of ``openim_robot_http_svc/send_stream_msg`` (robot-conversation.md, 2.3): a
robot's one-to-one reply pushed in pieces, one piece (``Chunk``) per call.

Pure synchronous logic, like :mod:`._messages`, whose conversations keep the streamed
message; :mod:`._state` routes the path here and the caller holds the fake's lock. The
first failing check wins, in this order, every refusal 10004 (the page's only refusal
code) unless said:

- ``From_Account`` or ``To_Account`` missing or not a non-empty string;
  ``From_Account`` not a valid robot of the app; ``To_Account`` not an imported account
  (as for ``sendmsg``: a user, a valid robot or the admin);
- ``Chunk`` missing or not a string; ``Finish`` given and not the integer 0 or 1;
- ``MsgKey`` given and not a non-empty string, not a stream's key, the key of a stream
  between another ``From_Account`` and ``To_Account``, of a finished stream, or of one
  ended by idleness;
- more than 5 arrivals naming the stream in the window ``(t-1, t]``, this one included,
  60007;
- the stream's whole text with this piece over 12,288 bytes, measured as a message,
  80002.

Then the piece is appended. A call without ``MsgKey`` starts a stream: a one-to-one
message from the robot to ``To_Account`` is stored in their conversation (``platform``
``"RESTAPI"``, a ``MsgKey`` as ``sendmsg``'s) and the answer carries its ``MsgKey``; a
later call answers the same ``MsgKey``. ``Finish: 1`` ends the stream after its piece.
A refusal's answer carries no ``MsgKey``.

The fake's choices where the page is silent:

- ``From_Account`` must be a valid robot (the page says "the robot", and the API is the
  robot service's): a user, the admin or a deleted robot is refused.
- A ``MsgKey`` that is unknown (a ``sendmsg`` message's key included), of another pair,
  of a finished stream or of an expired one: 10004, as the page lists no other code.
  So is a ``MsgKey`` or ``Finish`` of JSON ``null``, and a ``Finish`` of ``true``.
- An empty ``Chunk`` is accepted (the page says only "required String"), on any call:
  it appends nothing but is a call, with its revision (so calls and update times show).
  Text is stored as sent: markup, control characters, any code point (a lone
  surrogate too, 3 bytes, as ``sendmsg`` takes it).
- ``Finish: 1`` on the first call makes a one-piece stream; ``Finish: 0`` is no finish.
  A robot may have several streams open to one user: each call without ``MsgKey``
  starts another.
- The conservative defaults the doc takes from the newer stream API: a stream ends
  after **15 s** without an accepted call (a gap of exactly 15 s still passes; idle
  time is the fake's ``clock``, measured from the arrival of the last accepted call),
  and at most **5 calls a second** per stream. A call names a stream when its
  ``MsgKey`` is the stream's and its ``From_Account`` and ``To_Account`` are the
  stream's; every such arrival counts against the 5, refused ones included (as the per-API
  limit and a group's 40 a second count every arrival); the call starting the stream is
  its first. The per-API 200 a second is the app's own limiter, before these rules.
- Size: the whole text as a text message's ``MsgBody``
  (``[{"MsgType":"TIMTextElem","MsgContent":{"Text":...}}]``, compact JSON, UTF-8,
  non-ASCII not escaped) plus any ``CloudCustomData`` a modification gave the message,
  exactly as :mod:`._messages` measures a message: 12,288 bytes pass, one more is 80002
  (the usage-limits page's 12 KB a message; the newer API's 128 KB is another API's).
- What is kept: each accepted call adds a revision to the stored message (``at`` the
  wall clock, ``text`` the whole text so far, ``body`` its text ``MsgBody``); the
  message's ``stream`` is ``"open"``, ``"finished"`` or ``"expired"``, and its
  ``stream_arrivals`` the arrival times of every call naming it. A stream left idle
  is found expired by the next call naming it or by the next read of the messages
  (``transcript``, ``GET /_fake/messages``), whichever comes first.
- A stream fires no ``Bot.OnC2CMessage``, even to a robot: the page documents none.
- ``modify_c2c_msg`` works on a streamed message as on any (it replaces the body and
  ``CloudCustomData``, adding a revision) and does not touch the stream: the next
  accepted piece is appended to the stream's own text (its pieces so far), which
  becomes the body again; a modified ``CloudCustomData`` is kept.
- Injected faults apply as to any path (:mod:`._app`): an injected code or a 502 leaves
  the stream as it was, a connection dropped after processing appends the piece. A call
  the app answers before these rules (the per-API 60007, authentication, an injected
  code, a 502, a drop before processing) is no arrival of the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ._answer import Answer
from ._messages import MAX_MESSAGE_BYTES, Messages, message_bytes
from ._records import Revision
from ._window import SlidingWindow

__all__ = ["IDLE_SECONDS", "STREAM_RATE", "Streams"]

IDLE_SECONDS = 15.0  # a stream ends after this long without an accepted call
STREAM_RATE = 5  # calls per second per stream
RATE_WINDOW = 1.0
OPEN, FINISHED, EXPIRED = "open", "finished", "expired"
TEXT = "TIMTextElem"


def _text_body(text: str) -> list[dict[str, Any]]:
    return [{"MsgType": TEXT, "MsgContent": {"Text": text}}]


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and value != ""


@dataclass(slots=True)
class _Stream:
    msg_key: str
    sender: str
    recipient: str
    text: str  # the pieces so far, appended
    last: float  # arrival of the last accepted call, for the idle end
    state: str = OPEN
    # Every arrival naming the stream: the 5-a-second window, and what tests read back.
    arrivals: SlidingWindow = field(default_factory=lambda: SlidingWindow(RATE_WINDOW))


class Streams:
    """The streams of the app, keyed by ``MsgKey``; their messages live in ``messages``.

    ``is_robot`` says whether an id is a valid robot.
    """

    def __init__(self, *, messages: Messages, is_robot: Callable[[object], bool]) -> None:
        self._messages = messages
        self._is_robot = is_robot
        self._streams: dict[str, _Stream] = {}
        # The open ones only, so finding the idle ones does not walk every stream ever.
        self._open: dict[str, _Stream] = {}

    def send(self, body: dict[str, Any], arrival: float) -> Answer:
        """One ``send_stream_msg`` call that arrived at ``arrival`` (the fake's clock)."""
        stream = self._named(body)
        if stream is None:
            return self._start(body, arrival)
        # Counted before any check: every arrival naming the stream counts against it.
        in_window = stream.arrivals.add(arrival)
        if stream.state == OPEN and arrival - stream.last > IDLE_SECONDS:
            self._end(stream, EXPIRED)
        answer = self._append(body, stream, in_window, arrival)
        self._sync(stream, revised=answer.code == 0)
        return answer

    def expire_idle(self, now: float) -> None:
        """End the open streams idle for more than 15 s at ``now`` (before a read)."""
        for stream in list(self._open.values()):
            if now - stream.last > IDLE_SECONDS:
                self._end(stream, EXPIRED)
                self._sync(stream, revised=False)

    def _named(self, body: dict[str, Any]) -> _Stream | None:
        """The stream whose key this call gives, if it is between the call's accounts."""
        key = body.get("MsgKey")
        stream = self._streams.get(key) if isinstance(key, str) else None
        if stream is None:
            return None
        if (stream.sender, stream.recipient) != (body.get("From_Account"), body.get("To_Account")):
            return None  # another pair's key: refused below, and no arrival of that stream
        return stream

    def _refusal(self, body: dict[str, Any]) -> Answer | None:
        """The checks before ``MsgKey``, in order."""
        from_account, to_account = body.get("From_Account"), body.get("To_Account")
        if not _nonempty_str(from_account):
            return Answer(10004, "From_Account must be a non-empty string")
        if not _nonempty_str(to_account):
            return Answer(10004, "To_Account must be a non-empty string")
        if not self._is_robot(from_account):
            return Answer(10004, "From_Account is not a valid robot of this app")
        if not self._messages.is_account(to_account):
            return Answer(10004, "To_Account is not an imported account")
        if not isinstance(body.get("Chunk"), str):
            return Answer(10004, "Chunk is missing or not a string")
        finish = body.get("Finish", 0)
        if type(finish) is not int or finish not in (0, 1):
            return Answer(10004, "Finish must be 0 or 1")
        return None

    def _start(self, body: dict[str, Any], arrival: float) -> Answer:
        refusal = self._refusal(body)
        if refusal is not None:
            return refusal
        if "MsgKey" in body:
            key = body["MsgKey"]
            if not _nonempty_str(key):
                return Answer(10004, "MsgKey must be a non-empty string")
            if key in self._streams:
                return Answer(10004, "MsgKey is a stream between other accounts")
            return Answer(10004, "MsgKey is not the key of a stream")
        chunk: str = body["Chunk"]
        msg_body = _text_body(chunk)
        if message_bytes(msg_body, None) > MAX_MESSAGE_BYTES:
            return Answer(80002, "the message is longer than 12 KB")
        message = self._messages.store_c2c_reply(body["From_Account"], body["To_Account"], msg_body)
        stream = _Stream(message.msg_key, message.sender, message.recipient, chunk, arrival)
        stream.arrivals.add(arrival)
        self._streams[stream.msg_key] = stream
        self._open[stream.msg_key] = stream
        if body.get("Finish") == 1:
            self._end(stream, FINISHED)
        self._sync(stream, revised=False)  # the first revision is the stored message's own
        return Answer(0, "", {"MsgKey": stream.msg_key})

    def _append(
        self, body: dict[str, Any], stream: _Stream, in_window: int, arrival: float
    ) -> Answer:
        refusal = self._refusal(body)
        if refusal is not None:
            return refusal
        if stream.state == FINISHED:
            return Answer(10004, "the stream with this MsgKey is finished")
        if stream.state == EXPIRED:
            return Answer(10004, "the stream with this MsgKey ended: no piece for 15 s")
        if in_window > STREAM_RATE:
            return Answer(60007, "more than 5 calls a second for this stream")
        text = stream.text + body["Chunk"]
        custom = self._messages.c2c_message(stream.msg_key).cloud_custom_data
        if message_bytes(_text_body(text), custom) > MAX_MESSAGE_BYTES:
            return Answer(80002, "the message is longer than 12 KB")
        stream.text, stream.last = text, arrival
        if body.get("Finish") == 1:
            self._end(stream, FINISHED)
        return Answer(0, "", {"MsgKey": stream.msg_key})

    def _end(self, stream: _Stream, state: str) -> None:
        stream.state = state
        self._open.pop(stream.msg_key, None)

    def _sync(self, stream: _Stream, *, revised: bool) -> None:
        """Write the stream's state, arrivals and (if ``revised``) text into its message."""
        message = self._messages.c2c_message(stream.msg_key)
        message = replace(
            message, stream=stream.state, stream_arrivals=tuple(stream.arrivals.times())
        )
        if revised:
            body = _text_body(stream.text)
            at = self._messages.wall_clock()
            revision = Revision(at, stream.text, body, message.cloud_custom_data)
            message = replace(
                message,
                text=stream.text,
                body=body,
                revisions=(*message.revisions, revision),
            )
        self._messages.replace_c2c(message)
