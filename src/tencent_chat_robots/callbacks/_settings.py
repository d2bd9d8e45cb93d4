"""A receiver's settings that need more than a range check: the token, the store, the
handlers (async functions only)."""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Callable

from .._exceptions import ValidationError
from .._logs import logger
from .._redact import Secret
from ._dedup import DedupStore, MemoryDedupStore

__all__ = ["STRONG_TOKEN", "Default", "checked_store", "checked_token", "is_async", "warn"]

STRONG_TOKEN = 16  # characters; below, one logged Sign lets the token be searched for
_SURROGATE = re.compile("[\ud800-\udfff]")


class Default(enum.Enum):
    STORE = "a new MemoryDedupStore"


def is_async(handler: object) -> bool:
    """Whether ``handler`` is an async function, or an object with ``async __call__``."""
    call = getattr(type(handler), "__call__", None)  # noqa: B004 - the class's, not callable()
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


def checked_token(token: object) -> Secret | None:
    """``token`` (boxed by the caller before anything could fail) if it is usable."""
    if token is None:
        return None
    if not isinstance(token, Secret) or not token.reveal():
        raise ValidationError("token must be a non-empty string or None")
    if _SURROGATE.search(token.reveal()):  # no UnicodeEncodeError quoting the token
        raise ValidationError("token is not valid Unicode text")
    return token  # never in a repr; redacted from every log and span


def warn(sdkappid: int, token: Secret | None) -> None:
    """Say at construction that callbacks are not authenticated, or weakly."""
    if token is None:
        logger.warning(
            "RobotCallbacks(sdkappid=%d) has no token: callbacks are not authenticated"
            " (only SdkAppid is checked); turn on the console's callback token and pass"
            " token=",
            sdkappid,
        )
    elif len(token.reveal()) < STRONG_TOKEN:
        logger.warning(
            "RobotCallbacks(sdkappid=%d): the callback token is shorter than %d characters;"
            " one logged Sign and RequestTime let it be searched for offline: set a long"
            " random one (32 characters) in the console",
            sdkappid,
            STRONG_TOKEN,
        )


def checked_store(
    store: object, clock: Callable[[], float], max_keys: int | None
) -> DedupStore | None:
    """The receiver's store: ``Default.STORE`` is a new memory store on ``clock``."""
    if store is Default.STORE:  # on the receiver's clock: a test's moves both
        if max_keys is None:
            return MemoryDedupStore(clock=clock)
        return MemoryDedupStore(max_keys, clock=clock)
    if max_keys is not None:
        raise ValidationError("max_dedup_keys sizes the default store: pass it or dedup=")
    if store is None:
        return None
    if not isinstance(store, DedupStore) or not (is_async(store.claim) and is_async(store.release)):
        raise ValidationError(
            f"dedup must be None or a store with async claim(key, ttl) and release(key),"
            f" got {type(store).__name__}"
        )
    return store
