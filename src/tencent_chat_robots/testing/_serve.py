"""Serve an ASGI app with uvicorn on a loopback port, for code that needs a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import socket
from collections.abc import AsyncIterator

from ._app import ASGIApp
from ._faults import ConnectionDropped

__all__ = ["require_uvicorn", "serve"]

_STARTUP_POLL = 0.005
_MISSING_UVICORN = "fake.serve() needs uvicorn: pip install 'tencent-chat-robots[testing]'"


def require_uvicorn() -> None:
    """Import uvicorn (the optional ``testing`` extra), or say which extra installs it.

    The error is a ``ModuleNotFoundError``, not a ``TencentChatError``: as with the redis
    extra (``_redis_limiter``), a missing package is a broken installation, not a failed
    call, and an ``except TencentChatError`` around API calls must not swallow it. Its
    ``name`` stays ``"uvicorn"``, which the command line reads to print its own hint.
    """
    try:
        importlib.import_module("uvicorn")
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] != "uvicorn":
            raise  # uvicorn is there but broken: its own error says more
        raise ModuleNotFoundError(_MISSING_UVICORN, name="uvicorn") from err


class _HideDrops(logging.Filter):
    """Injected drops are intended; uvicorn would log each as an application error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn in this event loop; yield its ``http://host:port`` URL."""
    require_uvicorn()  # the optional "testing" extra; in-process use does not need it
    import uvicorn

    # Binding here (not in uvicorn) gives port 0 its real number and turns a bind
    # failure into an ordinary OSError instead of uvicorn's sys.exit().
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says
    # TCP, and without it every answer waits ~40 ms on Nagle and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    log_filter = _HideDrops()
    logger = logging.getLogger("uvicorn.error")
    logger.addFilter(log_filter)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # startup failed: raise its error
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(_STARTUP_POLL)
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        yield f"http://{shown}:{bound_port}"
    finally:
        server.should_exit = True
        try:
            await task
        finally:
            logger.removeFilter(log_filter)
            sock.close()
