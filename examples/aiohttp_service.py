"""An aiohttp service: one ``TencentChat`` for the app, an interactive route bounded by a
deadline, a readiness probe, and the robots' callbacks answered as the robot.

- The client is made in a ``cleanup_ctx`` (on the server's event loop, at startup),
  kept in ``app[CHAT]`` (a ``web.AppKey``) and closed at cleanup, after the callback
  receiver has let its running handlers finish.
- ``POST /rooms/{room_id}/robots/{robot}`` puts a robot in a room while the user waits,
  through ``chat.with_options(max_wait=..., timeout=..., deadline=...)``: 503 when it
  cannot be done in time (try again), 422 for bad input, 502 with Tencent's code when
  Tencent refused. Robot ids start with ``@RBT#``: percent-encode them in the path
  (``%40RBT%23001``).
- ``GET /ready``: ``chat.health()`` (no request to Tencent) and the receiver's load;
  200 when both can serve, else 503.
- ``POST /tencent/callback``: ``RobotCallbacks`` is an ASGI app, which aiohttp cannot
  mount, so the route hands the request's query and body to its framework-neutral
  ``bot.dispatch(query, body)`` and sends back the ``(status, headers, body)`` it returns.

Run it against Tencent (from a clone: ``pip install ".[testing]"``)::

    TENCENT_CHAT_SDKAPPID=1400000000 TENCENT_CHAT_SECRET_KEY=... TENCENT_CHAT_ADMIN=... \\
    TENCENT_CHAT_CALLBACK_TOKEN=... python examples/aiohttp_service.py --port 8080

and set ``https://<your host>/tencent/callback`` as the app's callback URL in the Chat
console. On the embedded fake server instead, with no credentials (robot ``@RBT#demo``,
rooms ``room-1`` to ``room-100``, and ``POST /demo/say?user=alice&text=hi`` to have a
simulated user talk to the robot)::

    python examples/aiohttp_service.py --fake    # or TENCENT_CHAT_FAKE=1
    curl -X POST localhost:8080/rooms/room-1/robots/%40RBT%23demo
    curl -X POST 'localhost:8080/demo/say?user=alice&text=hi'
    curl localhost:8080/ready

``tests/test_examples_services.py`` runs it against the fake.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tencent_chat_robots import (
    APIError,
    ClientClosedError,
    DeadlineExceededError,
    QueueTimeoutError,
    RequestError,
    TencentChat,
    TencentChatError,
    ValidationError,
)
from tencent_chat_robots.callbacks import C2CMessage, GroupMention, RobotCallbacks, SignFilter

# Rule of thumb for calls made while a user waits: deadline below the load balancer's
# timeout (the service answers 503 itself rather than the balancer timing out); max_wait
# small (a long wait for a rate permit means the budget is spent: say so early);
# timeout <= deadline, with room for a retry (Tencent's server gives up after 3 s itself).
# For a balancer that waits 5 s:
INTERACTIVE_MAX_WAIT = 0.3
INTERACTIVE_TIMEOUT = 3.0
INTERACTIVE_DEADLINE = 4.0
SHUTDOWN_GRACE = 10.0  # for callback handlers still running at shutdown


@dataclass(frozen=True)
class Settings:
    sdkappid: int
    callback_token: str | None = None
    max_wait: float = INTERACTIVE_MAX_WAIT
    timeout: float = INTERACTIVE_TIMEOUT
    deadline: float = INTERACTIVE_DEADLINE

    @classmethod
    def from_env(cls) -> Settings:
        # TencentChat reads TENCENT_CHAT_SECRET_KEY, _ADMIN, _REGION and _BASE_URL itself.
        return cls(
            sdkappid=int(os.environ["TENCENT_CHAT_SDKAPPID"]),
            callback_token=os.environ.get("TENCENT_CHAT_CALLBACK_TOKEN"),
        )


CHAT = web.AppKey("chat", TencentChat)
BOT = web.AppKey("bot", RobotCallbacks)
SETTINGS = web.AppKey("settings", Settings)


def _failure(status: int, error: TencentChatError, **extra: Any) -> web.Response:
    body = {"error": type(error).__name__, "message": str(error), **extra}
    headers = {"Retry-After": "1"} if status == 503 else None
    return web.json_response(body, status=status, headers=headers)


async def add_robot_to_room(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    # A view of the app's client with bounds for this kind of call; it needs no
    # closing (and refuses it): cleanup closes the one client.
    urgent = request.app[CHAT].with_options(
        max_wait=settings.max_wait, timeout=settings.timeout, deadline=settings.deadline
    )
    room_id, robot = request.match_info["room_id"], request.match_info["robot"]
    try:
        result = await urgent.add_robot_to_room(room_id, robot)
    except ValidationError as error:  # refused before anything was sent
        return _failure(422, error)
    except (DeadlineExceededError, QueueTimeoutError, ClientClosedError) as error:
        # Not in time: try again (``request_sent``: it may have been done all the same).
        return _failure(503, error, request_sent=error.request_sent)
    except APIError as error:
        return _failure(502, error, code=error.code, request_id=error.request_id)
    except RequestError as error:  # no usable answer: connection, gateway page
        return _failure(502, error, code=None, request_id=error.request_id)
    return web.json_response(
        {
            "room_id": room_id,
            "robot": robot,
            "request_id": result.request_id,
            "settled_on_retry": result.settled_on_retry,
        }
    )


async def ready(request: web.Request) -> web.Response:
    """Readiness: 200 when the client and the callback receiver can serve, else 503."""
    chat = request.app.get(CHAT)
    if chat is None:
        return web.json_response({"ready": False, "reason": "starting"}, status=503)
    health = chat.health()  # from memory: no request to Tencent
    load = request.app[BOT].load
    body = {
        **health.as_dict(),
        "callbacks": {"ready": load.ready, "running": load.running, "backlog": load.backlog},
    }
    return web.json_response(body, status=200 if health.ready and load.ready else 503)


async def tencent_callback(request: web.Request) -> web.Response:
    # Verified, acknowledged at once, handled after the answer (see RobotCallbacks).
    status, headers, body = await request.app[BOT].dispatch(request.query, await request.read())
    return web.Response(status=status, headers=headers, body=body)


def create_app(
    settings: Settings | None = None, *, make_chat: Callable[[], TencentChat] | None = None
) -> web.Application:
    """The service. ``make_chat`` makes its one client (default: ``TencentChat`` from
    the ``TENCENT_CHAT_*`` environment variables), at startup."""
    settings = settings or Settings.from_env()
    bot = RobotCallbacks(sdkappid=settings.sdkappid, token=settings.callback_token)
    # A callback body past bot.max_body is answered 413 by aiohttp itself.
    app = web.Application(client_max_size=bot.max_body)
    app[SETTINGS] = settings
    app[BOT] = bot

    async def client(app: web.Application) -> AsyncIterator[None]:
        app[CHAT] = make_chat() if make_chat is not None else TencentChat(settings.sdkappid)
        try:
            yield
        finally:
            # Handlers still answering users finish first (they send with the client).
            try:
                await bot.aclose(timeout=SHUTDOWN_GRACE)
            finally:
                await app[CHAT].aclose()

    app.cleanup_ctx.append(client)

    @bot.on_c2c_message
    async def echo(event: C2CMessage) -> None:
        await app[CHAT].send_c2c_message(event.robot, event.sender, f"you said: {event.text}")

    @bot.on_group_mention
    async def greet(event: GroupMention) -> None:
        await app[CHAT].send_group_message(
            event.group_id, f"hello {event.sender}", from_account=event.robots[0]
        )

    app.router.add_post("/rooms/{room_id}/robots/{robot}", add_robot_to_room)
    app.router.add_get("/ready", ready)
    app.router.add_post("/tencent/callback", tencent_callback)
    return app


# -- python examples/aiohttp_service.py [--fake] ---------------------------------------------


def _fake_app(host: str, port: int) -> web.Application:
    """The service on the embedded fake server, which calls it back over loopback, and
    ``POST /demo/say?user=alice&text=hi``: a simulated user talks to the robot."""
    import anyio

    from tencent_chat_robots.testing import FakeTencentChat

    fake = FakeTencentChat()
    robot = "@RBT#demo"
    fake.create_robot(robot)
    for i in range(1, 101):
        fake.create_room(f"room-{i}")
    token = "demo-callback-token-0123456789"
    app = create_app(Settings(sdkappid=fake.sdkappid, callback_token=token), make_chat=fake.client)
    fake.set_callback(f"http://{host}:{port}/tencent/callback", token=token)

    async def say(request: web.Request) -> web.Response:
        user, text = request.query.get("user", "alice"), request.query.get("text", "hi")
        await fake.user_sends(user, robot, text)
        with anyio.fail_after(5):  # the echo handler answers as the robot
            await fake.wait_until(lambda: fake.transcript(user, robot)[-1].sender == robot)
        messages = fake.transcript(user, robot)
        return web.json_response([{"from": m.sender, "text": m.text} for m in messages])

    async def close_fake(_: web.Application) -> None:
        await fake.aclose()

    app.router.add_post("/demo/say", say)
    app.on_cleanup.append(close_fake)
    return app


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fake", action="store_true", help="run on the embedded fake server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    fake = args.fake or os.environ.get("TENCENT_CHAT_FAKE", "") not in ("", "0")
    app = _fake_app(args.host, args.port) if fake else create_app()
    # A web server logs each request's query; a callback's carries its Sign.
    logging.getLogger("aiohttp.access").addFilter(SignFilter())
    web.run_app(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
