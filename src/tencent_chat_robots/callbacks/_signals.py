"""The signals a receiver is answering and has answered, by de-duplication key.

A signal is a request whose answer goes back to the user's client, so a redelivery must
get an answer too, not just an acknowledgement: the same one if this process can know
it (the first is still running here: wait for it; it finished here: the kept
``RspData``), else ``ErrorCode`` 1 (another process answered it; its ``RspData`` is not
known here, and an empty one with ``ErrorCode`` 0 would tell the client a made-up
success).
"""

from __future__ import annotations

import asyncio
import collections

__all__ = ["ANSWERS_KEPT", "SignalAnswers"]

ANSWERS_KEPT = 1024  # the last signals' RspData, for their duplicates


class SignalAnswers:
    """In flight: a future of ``(ErrorCode, RspData)`` per key; answered: the RspData of
    the last :data:`ANSWERS_KEPT` signals answered with ``ErrorCode`` 0."""

    __slots__ = ("_answered", "_in_flight")

    def __init__(self) -> None:
        self._in_flight: dict[str, asyncio.Future[tuple[int, str]]] = {}
        self._answered: collections.OrderedDict[str, str] = collections.OrderedDict()

    def in_flight(self, key: str) -> asyncio.Future[tuple[int, str]] | None:
        """The answer to come of the signal ``key`` being answered now, if any."""
        return self._in_flight.get(key)

    def begin(self, key: str) -> None:
        """Say that this callback answers ``key`` (it must call :meth:`end`)."""
        self._in_flight[key] = asyncio.get_running_loop().create_future()

    def end(self, key: str, code: int, rsp_data: str) -> None:
        """The answer of ``key``: given to the duplicates waiting, kept if a success."""
        future = self._in_flight.pop(key, None)
        if future is not None and not future.done():
            future.set_result((code, rsp_data))
        if code == 0:
            self._answered[key] = rsp_data
            self._answered.move_to_end(key)
            if len(self._answered) > ANSWERS_KEPT:
                self._answered.popitem(last=False)

    def answered(self, key: str) -> str | None:
        """The RspData this process answered ``key`` with, if it still knows it."""
        return self._answered.get(key)
