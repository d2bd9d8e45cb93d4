"""The library's logger, and ``TENCENT_CHAT_LOG=info|debug`` to see it without setup.

As the Stainless SDKs' ``*_LOG`` variables: the variable gives the package's logger a
level and a stderr handler of its own, leaving the root logger and the application's
handlers alone.
"""

from __future__ import annotations

import logging
import os
import sys

from ._redact import RedactingFilter

__all__ = ["ENV_LOG", "configure_from_env", "logger"]

ENV_LOG = "TENCENT_CHAT_LOG"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO}

logger = logging.getLogger("tencent_chat_robots")
# A library leaves output to the application: without this, Python's last-resort
# handler would print every retry warning to stderr of programs that set up no logging.
logger.addHandler(logging.NullHandler())


class _EnvHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``TENCENT_CHAT_LOG`` adds (a class of its own, to add it only once)."""


def configure_from_env() -> None:
    """Apply ``TENCENT_CHAT_LOG`` (``info`` or ``debug``; anything else is ignored)."""
    level = _LEVELS.get(os.environ.get(ENV_LOG, "").strip().lower())
    if level is None:
        return
    logger.setLevel(level)
    if not any(isinstance(handler, _EnvHandler) for handler in logger.handlers):
        handler = _EnvHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter(
                "[%(asctime)s - %(name)s - %(levelname)s] %(message)s", "%Y-%m-%d %H:%M:%S"
            )
        )
        handler.addFilter(RedactingFilter())
        logger.addHandler(handler)
