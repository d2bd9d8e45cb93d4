"""What ``benchmarks/callbacks.py`` runs outside its own process.

* :func:`receiver_app`, a uvicorn factory (``--factory _callback_apps:receiver_app``):
  a ``RobotCallbacks`` for the benchmark's app, configured by environment variables
  (``BENCH_TOKEN``, ``BENCH_MAX_HANDLERS``, ``BENCH_HANDLER_SLEEP`` seconds, and
  ``BENCH_REDIS_URL`` for a ``RedisDedupStore``; the default in-memory store without
  it), whose C2C handler records the ``MsgKey`` it got and when, then sleeps. Any path
  takes callbacks but ``GET /stats``: the receiver's counters, the handlers started,
  finished and running (and the most at once), the backlog, the keys handled and their start times
  (``time.monotonic``: one clock for every process of the host), the process's CPU, the
  time each POST spent in the app (request in to answer out) and the GC's pauses.
* :func:`echo_conversations`, run inside the fake's process (``FakeProcess.call``):
  simulated users talk to the echo bot, each message timed from the start of
  ``user_sends`` to the moment the fake stores the robot's reply.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tencent_chat_robots.callbacks import C2CMessage, RedisDedupStore, RobotCallbacks
from tencent_chat_robots.testing import percentile

SDKAPPID = 1400000000  # _harness.SDKAPPID (not imported: this module runs in the workers)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ReceiverApp:
    """``RobotCallbacks`` behind a thin ASGI router: ``GET /stats``, else the receiver."""

    def __init__(self) -> None:
        redis_url = os.environ.get("BENCH_REDIS_URL")
        options: dict[str, Any] = {}
        if redis_url:
            options["dedup"] = RedisDedupStore(redis_url)
        self.bot = RobotCallbacks(
            SDKAPPID,
            token=os.environ["BENCH_TOKEN"],
            max_handlers=int(os.environ.get("BENCH_MAX_HANDLERS", "100")),
            **options,
        )
        self.sleep = float(os.environ.get("BENCH_HANDLER_SLEEP", "0"))
        self.keys: list[str] = []
        self.starts: list[float] = []
        self.finished = 0
        self.running = 0
        self.most_running = 0
        self.app_seconds: list[float] = []  # per POST: the ASGI call, request in to answer out
        self.gc_pauses: list[float] = []
        self._gc_started = 0.0
        gc.callbacks.append(self._gc)
        self.bot.on_c2c_message(self.handle)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_started)

    async def handle(self, event: C2CMessage) -> None:
        self.starts.append(time.monotonic())
        self.keys.append(event.msg_key)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.sleep:
                await asyncio.sleep(self.sleep)
        finally:
            self.running -= 1
            self.finished += 1

    def stats(self) -> dict[str, Any]:
        return {
            "stats": dict(self.bot.stats),
            "started": len(self.keys),
            "finished": self.finished,
            "running": self.bot.running,
            "backlog": self.bot.load.backlog,
            "most_running": self.most_running,
            "keys": self.keys,
            "starts": self.starts,
            "cpu": time.process_time(),
            "app_seconds": self.app_seconds,
            "gc_pauses": self.gc_pauses,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/stats":
            body = json.dumps(self.stats()).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "http":
            await self.bot(scope, receive, send)
            return
        began = time.perf_counter()
        await self.bot(scope, receive, send)
        self.app_seconds.append(time.perf_counter() - began)


def receiver_app() -> ReceiverApp:
    """The uvicorn factory."""
    return ReceiverApp()


async def echo_conversations(
    fake: Any,
    *,
    url: str,
    token: str,
    robot: str,
    messages: int,
    rate: float,
    warmup: int = 10,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """``messages`` users each send ``robot`` one message, ``rate`` a second on schedule
    (open loop), through the echo bot at ``url``; per message, the time from the start of
    ``user_sends`` to the moment the fake stored the robot's reply (its ``sendmsg``
    processed with ErrorCode 0: :meth:`FakeApp.handle` returned), taken in the fake's
    event loop by a hook on ``handle``, no polling. ``warmup`` messages first, unmeasured.
    """
    fake.create_robot(robot)
    fake.set_callback(url, token=token)
    loop = asyncio.get_running_loop()
    waiting: dict[tuple[str, str], asyncio.Future[float]] = {}
    app = fake.app
    handle = app.handle

    def hooked(method: str, path: str, query: bytes, raw_body: bytes) -> Any:
        reply = handle(method, path, query, raw_body)
        if waiting and path.endswith("openim/sendmsg"):
            stored = time.perf_counter()
            try:
                body = json.loads(raw_body)
                key = (body["To_Account"], body["MsgBody"][0]["MsgContent"]["Text"])
                ok = json.loads(reply.body).get("ErrorCode") == 0
            except (ValueError, KeyError, IndexError, TypeError):
                return reply
            future = waiting.get(key)
            if ok and future is not None and not future.done():
                future.set_result(stored)
        return reply

    async def talk(user: str, text: str) -> dict[str, Any]:
        future = waiting[(user, f"you said: {text}")] = loop.create_future()
        began = time.perf_counter()
        deliveries = await fake.user_sends(user, robot, text)
        acked = time.perf_counter()
        try:
            stored = await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            stored = None
        return {
            "reply_s": None if stored is None else stored - began,
            "ack_s": acked - began,
            "delivered": all(d.ok for d in deliveries),
            "transcript": len(fake.transcript(user, robot)),
        }

    app.handle = hooked
    try:
        for i in range(warmup):  # connections opened, first-call costs paid
            await talk(f"warmup{i:03d}", f"warm-up {i}")
        fake.reset_calls()
        start = loop.time() + 0.05
        tasks = []
        for i in range(messages):
            at = start + i / rate
            if (delay := at - loop.time()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(talk(f"user{i:04d}", f"message {i}")))
        results = await asyncio.gather(*tasks)
    finally:
        app.handle = handle
        await fake.aclose()
    replies = [r["reply_s"] for r in results if r["reply_s"] is not None]
    acks = [r["ack_s"] for r in results]
    calls = [c for c in fake.calls if c.endpoint == "openim/sendmsg"]
    return {
        "messages": messages,
        "rate": rate,
        "replies_stored": len(replies),
        "missing_replies": messages - len(replies),
        "delivered": sum(r["delivered"] for r in results),
        "transcripts_of_two": sum(r["transcript"] == 2 for r in results),
        "reply_ms": _spread(replies),
        "callback_ack_ms": _spread(acks),
        "sendmsg_most_in_a_second": fake.max_arrivals_in_window("openim/sendmsg"),
        "sendmsg_refused_60007": sum(c.error_code == 60007 for c in calls),
    }


def _spread(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": round(1000 * percentile(seconds, 0.5), 3),
        "p99": round(1000 * percentile(seconds, 0.99), 3),
        "max": round(1000 * max(seconds), 3),
    }
