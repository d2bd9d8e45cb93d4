"""``SignFilter``: a callback's ``Sign`` out of a web server's access log.

A web server's access log records each request's path with its query string, so every
callback's ``Sign`` and ``RequestTime``: with them, a short or guessable token can be
searched offline (``Sign = sha256(token + RequestTime)``, no secret salt).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, MutableMapping

from .._redact import REDACTED

__all__ = ["SignFilter"]

# ``Sign=`` where a parameter name starts (after ``?``, ``&``, a space, or a percent
# escape such as ``%26Sign%3D``), not inside a longer name such as ``DesignSign=``.
_SIGN = re.compile(r"(?:(?<![\w%])|(?<=%[0-9A-Fa-f]{2}))(Sign(?:=|%3D))[^&\s\"'<>]*", re.IGNORECASE)
_LEAVES = (int, float, bool, type(None))


def redact_sign(text: str) -> str:
    """``text`` with the value of every ``Sign`` parameter replaced."""
    if "sign" not in text.lower():
        return text
    return _SIGN.sub(lambda match: match.group(1) + REDACTED, text)


def _cleaned(value: object) -> object:
    if isinstance(value, str):
        return redact_sign(value)
    if isinstance(value, _LEAVES):
        return value
    text = str(value)  # an object whose str is a URL (formatted with %s)
    cleaned = redact_sign(text)
    return value if cleaned == text else cleaned


class SignFilter(logging.Filter):
    """Redacts the value of every ``Sign=`` query parameter in the records it sees.

    ``logging.getLogger("uvicorn.access").addFilter(SignFilter())`` (gunicorn:
    ``gunicorn.access``; hypercorn: ``hypercorn.access``). The record keeps its shape:
    its message and each of its arguments are rewritten in place (uvicorn's access
    formatter unpacks the arguments), and it is never dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_sign(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_cleaned(arg) for arg in args)
        elif isinstance(args, MutableMapping):
            # In place: the mapping's own class may answer keys it does not hold
            # (gunicorn's SafeAtoms answers "-" for a header the request lacks).
            for name, arg in list(args.items()):
                args[name] = _cleaned(arg)
        elif isinstance(args, Mapping):
            record.args = {name: _cleaned(arg) for name, arg in args.items()}
        return True
