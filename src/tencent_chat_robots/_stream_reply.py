"""Streaming replies: text written token by token, sent coalesced, always finished.

``chat.stream_reply(robot, user)`` streams a one-to-one reply through ``send_stream_msg``
(pieces appended under the ``MsgKey`` the first answered, ``Finish: 1`` on the last);
``chat.stream_group_reply(group, from_account=robot)`` sends a group message and then
replaces it with the text so far (``modify_group_msg``). Both are a
:class:`StreamReply`, whose ``write()`` only appends to the text: one sender task per
stream makes the calls (robot-conversation.md, 2.3 and 2.4).

- **Coalescing.** The first text goes at once. After that a call starts no sooner than
  ``min_interval`` after the previous call's *answer*: the server has then seen the
  previous call at least that long before the next, whatever the network's jitter, so
  0.2 s (the least a one-to-one stream takes) keeps a stream within 5 calls a second.
  Each call carries everything written since the last. One call at a time, so pieces
  arrive in the order written.
- **A last piece with text.** ``Chunk`` is a required string and whether an empty one is
  taken is not documented, so a one-to-one update keeps back its last character: the
  call that finishes always carries text (but for a stream whose whole text went in its
  first call).
- **Sharing the API.** Calls go through the endpoint's limiter like any other: a
  stream's first call in the client's class, its updates in the bulk class, so a new
  stream's first text goes before other streams' updates; when streams want more calls
  than the API's rate, each waits longer and its calls carry more text. An update waits
  at most ``UPDATE_MAX_WAIT`` (1 s) for its permit, and is then not sent (its text goes
  with the next call), so under overload an ending stream is not stuck behind its own
  update; the call that finishes waits in the interactive class, after at most 0.2 s.
- **Failures.** A stream retries by the rules of ``_retry`` (each call is made with no
  retries of its own, so a retry too waits ``min_interval``), and a retried piece takes
  along the text written since. A piece whose answer was lost after it may have reached
  the server is not sent again (the server cannot tell a repeat, so it could show twice):
  the stream ends with :class:`StreamInterruptedError`, having told the server it is
  finished with a last piece of ``error_suffix`` or nothing (which cannot repeat
  anything). A group's first message is retried as the same request (its ``Random``
  makes a repeat a no-op), and a modification may always be repeated (it replaces the
  text).
- **Idleness.** ``send_stream_msg`` documents no longest gap; the newer stream API ends a
  stream after 15 s without a piece. Keeping one alive would take a call with no text,
  whose effect no page documents, so a one-to-one stream that has shown text and then
  has nothing written for ``idle_timeout`` (10 s) is finished instead, and a later write
  raises :class:`StreamClosedError` (``idle_timeout=None``: never). Before its first
  text, a stream waits as long as the model takes. A group message has no such limit.
"""

from __future__ import annotations

import asyncio
import reprlib
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from ._calls import Call
from ._config import require_number
from ._constants import MAX_TIMEOUT
from ._elements import MAX_MESSAGE_BYTES
from ._exceptions import (
    ClientClosedError,
    QueueTimeoutError,
    RequestError,
    StreamClosedError,
    StreamInterruptedError,
    TencentChatError,
    ValidationError,
)
from ._lifecycle import finish_despite_cancel
from ._logs import logger
from ._messages import TEXT_MESSAGE_OVERHEAD, text_bytes
from ._options import CallOptions
from ._retry import RetryState, next_state, retry_decision
from ._stream_wires import Wire

if TYPE_CHECKING:
    from ._client import TencentChat

__all__ = ["OpenStreams", "StreamReply"]

# Defaults: 5 calls a second per stream (the newer stream API's bound); about one group
# update a second (what Tencent's own sample code does, within the group's 40 a second).
MIN_INTERVAL = 0.2
GROUP_INTERVAL = 1.0
# Below the newer stream API's 15 s, so a stream is finished by us, not cut by the server.
IDLE_TIMEOUT = 10.0
# How long a cancelled block or a closing client waits for the finishing call.
FINISH_TIMEOUT = 2.0
# The most an update waits for its rate permit before it is left for the next call.
UPDATE_MAX_WAIT = 1.0
# A stream whose last call was accepted this long ago sends its update in the
# interactive class: starved longer, the server (newer API: 15 s) would end it.
STARVED_AFTER = 5.0
# What a write after the end says, by how the stream ended.
_ENDED = {
    "finish": "the stream was finished",
    "error": "the stream was finished when its block raised",
    "cancelled": "the stream was finished when its block was cancelled",
    "closed": "the client was closed, which finished the stream",
}


class OpenStreams:
    """A client's streams not yet ended, shared by its views; once ``closing``, no new
    stream starts."""

    __slots__ = ("closing", "streams")

    def __init__(self) -> None:
        self.streams: set[StreamReply] = set()
        self.closing = False

    async def close(self, timeout: float) -> None:
        """Refuse new streams and finish the open ones within ``timeout``, even if this
        task is cancelled meanwhile (the cancellation is re-raised after)."""
        self.closing = True
        ending = [stream._end_within("closed", timeout) for stream in list(self.streams)]
        await finish_despite_cancel(asyncio.gather(*ending))


def _reached(outcome: BaseException | None) -> bool:
    """Whether a call that ended with ``outcome`` (``None``: answered) left the client."""
    if outcome is None:
        return True
    if isinstance(outcome, RequestError):
        return bool(getattr(outcome, "request_sent", True))  # answered errors have none
    return False  # cancelled before or while sending: not counted


class StreamReply:
    """A reply streamed as it is written: ``async with chat.stream_reply(robot, user) as r``.

    :meth:`write` appends text and returns at once; the stream's own task sends it (see
    the module ``_stream_reply``). Leaving the block, or :meth:`finish`, sends the rest
    and ends the stream. An exception in the block ends it with the text written so far
    (and ``error_suffix``, if set) and is re-raised; a cancellation ends it within
    ``FINISH_TIMEOUT`` (2 s) and stays a cancellation; closing the client ends every open
    stream first. A failed call that cannot be retried ends the stream with
    :class:`StreamInterruptedError` (raised by the next write, or on leaving the block),
    which carries the ``delivered`` text. Writing after the end raises
    :class:`StreamClosedError`.

    ``text`` is everything written, ``delivered`` what the server acknowledged,
    ``msg_key`` (one-to-one) or ``msg_seq`` (group) the message's id once sent, ``calls``
    the calls made (a retried one counts again), ``finished`` whether the stream ended
    with all its text shown.
    """

    def __init__(
        self,
        client: TencentChat,
        wire: Wire,
        *,
        min_interval: float,
        idle_timeout: float | None,
        error_suffix: str | None,
    ) -> None:
        self._client = client
        self._wire = wire
        self._interval = min_interval
        self._idle_timeout = idle_timeout
        self._error_suffix = error_suffix or ""
        # Retries and timing are the stream's (see the module docstring): each call makes
        # one attempt, and a client's deadline, meant for a whole call, would turn an
        # update's skipped permit into the stream's end.
        options = attrs.evolve(client.options or CallOptions(), deadline=None)
        self._first_options = attrs.evolve(options, max_retries=0)
        self._update_options = attrs.evolve(
            options, priority="bulk", max_wait=UPDATE_MAX_WAIT, max_retries=0
        )
        self._final_options = attrs.evolve(
            options, priority="interactive", max_wait=None, max_retries=0
        )
        self._max_retries = options.max_retries
        self._joined = ""
        self._pending: list[str] = []
        # The message's size so far, with room kept for the suffix, which must fit.
        self._size = TEXT_MESSAGE_OVERHEAD + text_bytes(self._error_suffix)
        self._acked = 0
        self._ending: str | None = None  # why the stream is ending: "finish", "idle", ...
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._answered_at: float | None = None
        self._accepted_at = 0.0  # when the last call was answered OK (loop time)
        self._retry_delay = 0.0
        self._error_raised = False
        self.calls = 0
        self.error: StreamInterruptedError | None = None

    def __repr__(self) -> str:
        target = self._wire.where()
        return (
            f"<StreamReply {target} written={len(self.text)} delivered={self._acked}"
            f" calls={self.calls} finished={self.finished}>"
        )

    # -- what the stream holds ---------------------------------------------------------

    @property
    def text(self) -> str:
        """Everything written to the stream (with ``error_suffix``, if it was added)."""
        if self._pending:
            self._joined += "".join(self._pending)
            self._pending.clear()
        return self._joined

    @property
    def delivered(self) -> str:
        """The text the server acknowledged."""
        return self.text[: self._acked]

    @property
    def msg_key(self) -> str | None:
        """The one-to-one message's ``MsgKey``, once its first piece was answered."""
        return self._wire.msg_key

    @property
    def msg_seq(self) -> int | None:
        """The group message's ``MsgSeq``, once it was sent."""
        return self._wire.msg_seq

    @property
    def finished(self) -> bool:
        """Whether the stream ended with all its text shown (or had none to show)."""
        if self._ending is None or self.error is not None:
            return False
        if self._task is not None and not self._task.done():
            return False
        return self._wire.finished or not self.text

    # -- writing -----------------------------------------------------------------------

    async def write(self, text: str) -> None:
        """Append ``text``; it is sent with the stream's next call (never waits for one).

        Raises :class:`ValidationError` if ``text`` is not text or would take the message
        past 12 KB (nothing of it is kept), :class:`StreamInterruptedError` once a call
        failed, and :class:`StreamClosedError` after the stream ended.
        """
        if self._ending is None and self._refused():
            self._ending = "closed"
            self._wake.set()  # a sender waiting for text finishes
        if self._ending is not None:
            self._raise_ended()
        self._append(text)
        if not text:
            return  # nothing to send: not a reason to wake the sender, nor to stay alive
        if self._task is None:
            self._start()
        elif not self._wake.is_set():
            self._wake.set()

    def _refused(self) -> bool:
        """Whether the client is closed or closing: no stream may start or go on."""
        return self._client.closed or self._client._streams.closing

    def _append(self, text: str, size: int | None = None) -> None:
        """Keep ``text``; ``size``: the message's size with it (measured now if ``None``)."""
        if size is None:
            size = self._size + _measured(text)
        if size > MAX_MESSAGE_BYTES:
            room = " (room kept for error_suffix)" if self._error_suffix else ""
            raise ValidationError(
                f"the reply would be {size} bytes as a text message{room}; at most"
                f" {MAX_MESSAGE_BYTES} (12 KB) are sent"
            )
        if text:
            self._size = size
            self._pending.append(text)

    def _raise_ended(self) -> None:
        if self.error is not None:
            self._error_raised = True
            raise self.error.with_traceback(None)
        if self._ending == "idle":
            reason = f"the stream was finished after {self._idle_timeout} s without text"
        else:
            reason = _ENDED[str(self._ending)]
        raise StreamClosedError(reason, text=self.text, delivered=self.delivered)

    # -- ending ------------------------------------------------------------------------

    async def finish(self) -> None:
        """Send the rest and end the stream; :class:`StreamInterruptedError` if it failed.

        Idempotent; leaving the ``async with`` block calls it.
        """
        await self._end("finish")
        if self.error is not None and not self._error_raised:  # raised once, not again
            self._error_raised = True
            raise self.error.with_traceback(None)

    async def __aenter__(self) -> StreamReply:
        if self._refused():
            raise ClientClosedError("the client is closed: no stream can start")
        if self._task is None:
            self._start()  # from now on, closing the client finishes this stream
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.finish()
        elif isinstance(exc, Exception):
            if self._ending is None and self._error_suffix:
                self._append(self._error_suffix, self._size)  # every write kept its room
            await self._end("error")
            if self.error is not None and exc is not self.error:  # that one goes on: say this
                logger.warning("a streamed reply was not finished: %s", self.error)
        else:  # cancelled (or interrupted): end within a bound, and stay cancelled
            await self._end_within("cancelled", FINISH_TIMEOUT)

    async def _end(self, reason: str) -> None:
        if self._ending is None:
            self._ending = reason
        task = self._task or self._start()  # one never entered nor written ends at once
        self._wake.set()
        if not task.done():
            # Waits without taking on the task's end: a sender cut short is not our
            # cancellation, and cancelling this wait leaves the sender running.
            await asyncio.wait({task})

    async def _end_within(self, reason: str, timeout: float) -> None:
        """End the stream, giving its calls ``timeout`` s, even if this task is cancelled
        meanwhile (re-raised after): the sender is cut short past it."""

        async def bounded() -> None:
            try:
                await asyncio.wait_for(self._end(reason), timeout)
            except asyncio.TimeoutError:
                if self._task is not None:
                    self._task.cancel()

        await finish_despite_cancel(bounded())

    # -- the sender --------------------------------------------------------------------

    def _start(self) -> asyncio.Task[None]:
        task = self._task = asyncio.get_running_loop().create_task(self._send())
        streams = self._client._streams.streams
        streams.add(self)
        task.add_done_callback(lambda _: streams.discard(self))
        return task

    async def _send(self) -> None:
        try:
            await self._send_all()
        except asyncio.CancelledError:
            self._fail(None)
            raise
        except TencentChatError as error:
            self._fail(error)
            await self._abandon()
        except Exception:  # a bug: the stream ends, and says so
            logger.exception("a streamed reply's sender failed")
            self._fail(None)

    def _fail(self, error: TencentChatError | None) -> None:
        if self.error is None:
            reason = (
                "its calls were cut short before it finished"
                if error is None
                else f"{type(error).__name__}: {error}"
            )
            self.error = StreamInterruptedError(
                f"the stream could not go on: {reason}",
                error=error,
                text=self.text,
                delivered=self.delivered,
            )
            self.error.__cause__ = error
            if self._ending is None:
                self._ending = "failed"

    async def _send_all(self) -> None:
        loop = asyncio.get_running_loop()
        state: RetryState | None = None
        while True:
            if not self._wire.needs_call(len(self.text), self._acked, self._ending is not None):
                if self._ending is not None:
                    self._wire.finished = True  # all of it was shown (or none was written)
                    return
                await self._wait_for_text()
                continue
            gap = self._interval
            if self._ending is not None:  # the call that finishes: 5 a second is enough
                gap = min(gap, MIN_INTERVAL)
            # Text written meanwhile goes with this call.
            await self._pause(max(gap, self._retry_delay))
            finish = self._ending is not None  # no text is written once it is ending
            text = self.text
            call, covered = self._wire.next_call(text, self._acked, finish)
            if self.msg_key is None and self.msg_seq is None:
                options = self._first_options
            elif finish or loop.time() - self._accepted_at >= STARVED_AFTER:
                options = self._final_options
            else:
                options = self._update_options
            try:
                result = await self._counted(call, options)
            except TencentChatError as error:
                self._answered_at = loop.time()
                if isinstance(error, QueueTimeoutError) and options is self._update_options:
                    continue  # not sent: its text goes with the next call
                if state is None:
                    state = RetryState(call.endpoint, retries_left=self._max_retries)
                decision = retry_decision(error, state)
                if not decision.retry:
                    raise
                state = next_state(state, error, decision)
                self._retry_delay = decision.delay
                continue
            self._answered_at = self._accepted_at = loop.time()
            state, self._retry_delay = None, 0.0
            complete = finish and covered == len(text)
            self._wire.acknowledged(result, complete)
            self._acked = covered
            if complete:
                return

    async def _counted(self, call: Call[Any], options: CallOptions) -> Any:
        """Make ``call``, counting it in ``calls`` if it left the client."""
        outcome: BaseException | None = None
        try:
            return await self._client._make(call, options)
        except BaseException as error:
            outcome = error
            raise
        finally:
            self.calls += _reached(outcome)

    async def _pause(self, gap: float) -> None:
        """Wait until ``gap`` s after the previous call's answer (none: not at all)."""
        if self._answered_at is not None:
            delay = self._answered_at + gap - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _wait_for_text(self) -> None:
        self._wake.clear()
        if self._idle_timeout is None or self.msg_key is None:
            await self._wake.wait()  # nothing shown yet: no stream the server could end
            return
        # A timer, not wait_for: on Python 3.10 and 3.11 wait_for can turn this task's
        # cancellation into a time-out, which would read as idleness. Counted from the
        # last call accepted, as the server counts.
        when = self._accepted_at + self._idle_timeout
        timer = asyncio.get_running_loop().call_at(when, self._idle)
        try:
            await self._wake.wait()
        finally:
            timer.cancel()

    def _idle(self) -> None:
        if self._ending is None:
            self._ending = "idle"
            logger.info("finishing a stream idle for %g s", self._idle_timeout)
        self._wake.set()

    async def _abandon(self) -> None:
        call = self._wire.abandon(self._error_suffix)
        if call is None:
            return

        async def end() -> None:
            await self._pause(MIN_INTERVAL)  # the server counts this call too
            await self._counted(call, self._final_options)

        try:
            await asyncio.wait_for(end(), FINISH_TIMEOUT)
        except (TencentChatError, asyncio.TimeoutError) as failure:
            logger.info("could not end the interrupted stream: %s", type(failure).__name__)


def _measured(text: object) -> int:
    """The bytes ``text`` adds to the message; :class:`ValidationError` if it is no text."""
    if not isinstance(text, str):
        raise ValidationError(f"a stream takes str, not {type(text).__name__}")
    try:
        return text_bytes(text)
    except UnicodeEncodeError:  # a lone surrogate
        raise ValidationError(f"not valid Unicode text: {reprlib.repr(text)}") from None


def open_stream(
    client: TencentChat,
    wire: Wire,
    *,
    min_interval: float,
    idle_timeout: float | None,
    error_suffix: str | None,
    least_interval: float = 0.0,
) -> StreamReply:
    """A checked :class:`StreamReply` (its settings' rules are checked before it starts);
    ``least_interval``: the smallest ``min_interval`` allowed."""
    min_interval = require_number(
        "min_interval", min_interval, minimum=least_interval, maximum=MAX_TIMEOUT
    )
    if idle_timeout is not None:
        idle_timeout = require_number(
            "idle_timeout", idle_timeout, minimum=0.001, maximum=MAX_TIMEOUT
        )
    if error_suffix is not None:
        try:
            size = TEXT_MESSAGE_OVERHEAD + _measured(error_suffix)
        except ValidationError as err:
            raise ValidationError(f"error_suffix: {err}") from None
        if size > MAX_MESSAGE_BYTES:
            raise ValidationError(f"error_suffix alone would take {size} bytes; at most 12 KB")
    return StreamReply(
        client,
        wire,
        min_interval=min_interval,
        idle_timeout=idle_timeout,
        error_suffix=error_suffix,
    )
