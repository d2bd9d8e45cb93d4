"""An echo bot: a FastAPI service that hears Tencent Chat robot events and replies as the robot.

One-to-one messages to a robot are answered with their text; a robot @-mentioned in a
group answers there. Run it (with ``pip install "tencent-chat-robots" fastapi uvicorn``)::

    TENCENT_CHAT_SDKAPPID=1400000000 TENCENT_CHAT_SECRET_KEY=... \\
    TENCENT_CHAT_CALLBACK_TOKEN=... uvicorn examples.echo_bot:app --port 8000

and set ``https://<your host>/tencent/callback`` as the app's callback URL in the Chat
console, with the robot events and the callback token switched on. Against the fake
server instead, set ``TENCENT_CHAT_BASE_URL`` to its address (``tencent-chat-robots
fake-server`` prints it) and register the URL with ``fake.set_callback``;
``tests/test_examples.py`` does exactly that.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tencent_chat_robots import TencentChat
from tencent_chat_robots.callbacks import C2CMessage, GroupMention, RobotCallbacks

# The client and the receiver read the same settings; TencentChat also reads the
# TENCENT_CHAT_SECRET_KEY, TENCENT_CHAT_ADMIN, TENCENT_CHAT_REGION and
# TENCENT_CHAT_BASE_URL variables itself.
SDKAPPID = int(os.environ["TENCENT_CHAT_SDKAPPID"])
chat = TencentChat(SDKAPPID)
bot = RobotCallbacks(sdkappid=SDKAPPID, token=os.environ.get("TENCENT_CHAT_CALLBACK_TOKEN"))


@bot.on_c2c_message
async def echo(event: C2CMessage) -> None:
    # Runs after Tencent got its answer: the 2-second callback limit does not apply here.
    await chat.send_c2c_message(event.robot, event.sender, f"you said: {event.text}")


@bot.on_group_mention
async def greet(event: GroupMention) -> None:
    await chat.send_group_message(
        event.group_id, f"hello {event.sender}", from_account=event.robots[0]
    )


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    # A mounted app's own lifespan is not run by Starlette: stop the receiver here,
    # letting running handlers finish, then close the client they send with.
    await bot.aclose(timeout=10.0)
    await chat.aclose()


app = FastAPI(lifespan=lifespan)
# The exact path as a route: a mount would serve "/tencent/callback/" and answer the
# bare path with a redirect, which Tencent counts as a failed callback.
app.add_route("/tencent/callback", bot, methods=["POST"])


@app.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {"ok": not chat.closed}
