"""Reporting a failure: logged with its traceback, redacted; given to ``on_error``.

A failure is logged with a constant message (one per command) and ``exc_info``, so an
error tracker reading the record (Sentry's logging integration) groups each exception by
its own stack rather than all of them under one message. The traceback's text is
formatted here, redacted (an error may quote the token or a UserSig), and set as the
record's ``exc_text``, which ``logging.Formatter`` prints instead of formatting the
traceback again. Sentry's own scrubber (``_sentry``) removes the live secrets from the
exception it builds from ``exc_info``.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from .._logs import logger
from .._redact import redact

__all__ = ["OnError", "call_on_error", "log_exception"]

OnError = Callable[[Any, BaseException], Awaitable[None]]


def log_exception(error: BaseException, message: str, *args: object) -> None:
    """Log ``message % args`` at ERROR with ``error``'s traceback (redacted in text)."""
    if not logger.isEnabledFor(logging.ERROR):
        return
    frames = traceback.extract_tb(error.__traceback__)
    where = frames[-1] if frames else None  # the line that raised, as a record's place
    record = logger.makeRecord(
        logger.name,
        logging.ERROR,
        __file__ if where is None else where.filename,
        0 if where is None or where.lineno is None else where.lineno,
        message,
        args,
        (type(error), error, error.__traceback__),
        func=None if where is None else where.name,
    )
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    record.exc_text = redact(text.rstrip())
    logger.handle(record)


async def call_on_error(
    hook: OnError | None, event: object, error: BaseException, limit: float | None
) -> None:
    """Await ``hook(event, error)`` for at most ``limit`` seconds; its own failure is
    logged and swallowed (a cancellation of the caller still goes through)."""
    if hook is None:
        return
    try:
        with anyio.move_on_after(math.inf if limit is None else limit) as scope:
            await hook(event, error)
    except Exception as failure:
        log_exception(failure, "the on_error hook failed")
        return
    if scope.cancelled_caught:
        logger.warning("the on_error hook did not return within %gs: cancelled", limit)
