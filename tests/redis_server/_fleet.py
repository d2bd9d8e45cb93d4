"""One process of a fleet: gather calls through a TencentChat paced by a shared Redis.

Top-level functions only, so ``multiprocessing`` can start them with ``spawn`` (a fresh
interpreter, like separate hosts) from the tests and the benchmark alike.
"""

from __future__ import annotations

import asyncio
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

from tencent_chat_robots import RedisRateLimiter, TencentChat


async def _gather(
    options: dict[str, Any], calls: int, go: Event, out: Queue[Any]
) -> dict[str, int]:
    limiter = RedisRateLimiter.from_url(
        options["redis_url"], rate=options["rate"], sdkappid=options["sdkappid"]
    )
    async with (
        limiter,
        TencentChat(
            options["sdkappid"],
            options["secret_key"],
            admin=options["admin"],
            base_url=options["base_url"],
            limiter=limiter,
            max_retries=0,  # a refusal must show, not be retried away
        ) as chat,
    ):
        await chat.get_all_robots()  # connections warm before the clock starts
        out.put("ready")
        # Every worker starts together: the fleet saturates the limit at once.
        await asyncio.to_thread(go.wait)
        results = await asyncio.gather(
            *(chat.get_all_robots() for _ in range(calls)), return_exceptions=True
        )
    errors = [r for r in results if isinstance(r, BaseException)]
    return {"ok": len(results) - len(errors), "errors": len(errors)}


def run_worker(options: dict[str, Any], calls: int, go: Event, out: Queue[Any]) -> None:
    """One worker process: put ``"ready"``, wait for ``go``, then put its tally on ``out``."""
    try:
        out.put(asyncio.run(_gather(options, calls, go, out)))
    except BaseException as err:
        out.put({"failure": repr(err)})
        raise
