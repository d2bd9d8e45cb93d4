"""SIGINT and SIGTERM delivered to the event loop, for commands that stop in good order."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

__all__ = ["SIGNALS", "signals_to"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
