"""SIGINT and SIGTERM delivered to the event loop, for commands that stop in good order."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["SIGNALS", "Interrupted", "command_signals", "signals_to"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Whether command_signals() puts the original handlers back: yes when the command runs
# inside a longer-lived program (tests); main() says no, since the process ends with the
# command, and a signal in between would otherwise end it with the default action (its
# exit code lost) after the report was written.
HAND_BACK = True


@contextlib.contextmanager
def signals_to(handler: Callable[[signal.Signals], object]) -> Iterator[None]:
    """Inside, each SIGINT or SIGTERM calls ``handler(signal)`` in the running loop.

    A signal the process was started ignoring stays ignored. Where the loop cannot take
    signals (Windows, a thread other than the main one) they keep their usual effect:
    KeyboardInterrupt for SIGINT, the end of the process for SIGTERM.
    """
    loop = asyncio.get_running_loop()
    taken: list[signal.Signals] = []
    try:
        for sig in SIGNALS:
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue  # as a script leaves it for its background jobs: not ours to take
            try:
                loop.add_signal_handler(sig, handler, sig)
            except (NotImplementedError, RuntimeError):
                continue
            taken.append(sig)
        yield
    finally:
        for sig in taken:
            loop.remove_signal_handler(sig)
            # asyncio leaves the default behind, which would kill a process still writing
            # its report; command_signals() puts the original back once it is written.
            signal.signal(sig, signal.SIG_IGN)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived before the command's event loop took signals over."""

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig.name)
        self.signal = sig


@contextlib.contextmanager
def command_signals() -> Iterator[None]:
    """For a whole command: until its loop takes them, a signal raises :class:`Interrupted`.

    On the way out the original handlers come back (if :data:`HAND_BACK`; else the
    signals are ignored from then on). A signal ignored at start stays ignored; outside
    the main thread, where handlers cannot be set, nothing changes.
    """

    def interrupt(signum: int, _: object) -> None:
        raise Interrupted(signal.Signals(signum))

    previous: dict[signal.Signals, Any] = {}  # whatever signal.getsignal() gave
    try:
        for sig in SIGNALS:
            handler = signal.getsignal(sig)
            if handler is signal.SIG_IGN:
                continue
            try:
                signal.signal(sig, interrupt)
            except ValueError:  # not the main thread
                break
            previous[sig] = handler
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if HAND_BACK else signal.SIG_IGN)
