"""Keeping the admin UserSig out of logs, reprs and exception text.

The signature travels in the query string, so anything that prints a request URL
(httpx's own INFO log, a chained httpx error, a proxy's error page) would leak it.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "install_httpx_log_filter", "redact"]

# Also the percent-encoded form, as a page that echoes the URL inside a link shows it.
_USERSIG = re.compile(r"(usersig(?:=|%3D))[^&\s\"'<>]*", re.IGNORECASE)
REDACTED = "REDACTED"  # plain letters, so it survives URL-encoding


def redact(text: str) -> str:
    """``text`` with the value of every ``usersig=`` (or ``usersig%3D``) parameter replaced."""
    if "usersig" not in text.lower():
        return text
    return _USERSIG.sub(r"\1" + REDACTED, text)


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
