"""The ``tencent-chat-robots`` command line (needs the ``[cli]`` extra: click, rich, uvicorn)."""

from __future__ import annotations

import sys

__all__ = ["main"]

# What the [cli] extra installs. Importing the commands needs click and rich; the fake
# server needs uvicorn only once it serves (demo, bench, fake-server).
_EXTRA = frozenset({"click", "rich", "uvicorn"})
_INSTALL_HINT = "pip install 'tencent-chat-robots[cli]'"


def main() -> None:
    """Console-script entry point; without the [cli] extra, says how to install it."""
    try:
        from . import _signals
        from ._main import main as run_cli

        _signals.HAND_BACK = False  # this process ends with the command
        run_cli()
    except ImportError as err:
        missing = (err.name or "").partition(".")[0]
        if missing not in _EXTRA:
            raise  # not a missing extra: a bug or a broken installation, worth a traceback
        sys.stderr.write(
            f"error: the tencent-chat-robots command needs {missing}, which is not installed."
            f"\nInstall the command line with: {_INSTALL_HINT}\n"
        )
        raise SystemExit(1) from None
