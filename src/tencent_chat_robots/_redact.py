"""Keeping the secret key and the admin UserSig inside the process.

The signature travels in the query string, so anything that prints a request URL
(httpx's own INFO log, a chained httpx error, a proxy's error page) would leak it; and
an error tracker that records the local variables of every frame would copy any
variable holding either secret. So: secrets are held in :class:`Secret` boxes until the
moment of use, the signed URL is a :class:`SignedURL` whose repr is redacted, and every
live client's exact secrets are listed here (:func:`live_secrets`) for the scrubbers of
other tools (``_sentry``).
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Iterable
from typing import Protocol

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "Secret",
    "SecretSource",
    "SignedURL",
    "box",
    "install_httpx_log_filter",
    "live_secrets",
    "redact",
    "watch_secrets",
]

# Also the percent-encoded form, as a page that echoes the URL inside a link shows it.
_USERSIG = re.compile(r"(usersig(?:=|%3D))[^&\s\"'<>]*", re.IGNORECASE)
REDACTED = "REDACTED"  # plain letters, so it survives URL-encoding


def redact(text: str) -> str:
    """``text`` with the value of every ``usersig=`` (or ``usersig%3D``) parameter replaced."""
    if "usersig" not in text.lower():
        return text
    return _USERSIG.sub(r"\1" + REDACTED, text)


class Secret:
    """A secret string in a box whose repr never shows it.

    Error trackers and ``capture_locals`` tracebacks repr every local variable of every
    frame; a boxed secret shows as ``Secret('********')``. The value comes out only
    through :meth:`reveal`, at the point of use, without being bound to a local.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


def box(value: object) -> object:
    """``value`` boxed in a :class:`Secret` if it is a string, else as it is."""
    return Secret(value) if isinstance(value, str) else value


class SignedURL(str):
    """A request URL carrying the UserSig: a plain ``str`` to transports, redacted in reprs.

    Being a ``str`` keeps user transports (``Transport.post(url: str, ...)``) working;
    the repr is what tracebacks with locals, error trackers and debuggers show.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(redact(str.__str__(self)))


class SecretSource(Protocol):
    """Anything that can name the exact secret strings it holds (a UserSigProvider)."""

    def secrets(self) -> Iterable[str]: ...


# Weak: listing a client's secrets must not keep the client alive.
_SOURCES: weakref.WeakSet[SecretSource] = weakref.WeakSet()


def watch_secrets(source: SecretSource) -> None:
    """List ``source.secrets()`` in :func:`live_secrets` for as long as ``source`` lives."""
    _SOURCES.add(source)


def live_secrets() -> list[str]:
    """The exact secret strings of every live client: secret keys, current and recent UserSigs."""
    return [secret for source in list(_SOURCES) for secret in source.secrets()]


class RedactingFilter(logging.Filter):
    """Rewrites a record whose message carries a ``usersig=`` parameter."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER = RedactingFilter()


def install_httpx_log_filter() -> None:
    """Redact httpx's ``HTTP Request: POST <url>`` records (logged on the ``httpx`` logger).

    Idempotent. A logger's filters see only records logged on that very logger, which
    is where httpx writes the URL.
    """
    logger = logging.getLogger("httpx")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
