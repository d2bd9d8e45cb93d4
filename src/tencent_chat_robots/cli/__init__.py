"""The ``tencent-chat-robots`` command line (needs the ``[cli]`` extra: click, rich, uvicorn)."""

from ._main import main

__all__ = ["main"]
