"""A streaming bot: a FastAPI service whose robot answers token by token, as its model writes.

One-to-one messages are answered through ``send_stream_msg`` (the user sees the answer
grow); a robot @-mentioned in a group answers with a message it keeps replacing with the
text so far. The "model" here is a stand-in that yields words at a human-ish pace: put
your language model's stream in its place (any async iterator of text). Run it (with
``pip install "tencent-chat-robots" fastapi uvicorn``)::

    TENCENT_CHAT_SDKAPPID=1400000000 TENCENT_CHAT_SECRET_KEY=... \\
    TENCENT_CHAT_CALLBACK_TOKEN=... uvicorn examples.streaming_bot:app --port 8000

and set ``https://<your host>/tencent/callback`` as the app's callback URL in the Chat
console (see ``echo_bot.py`` for the rest; ``tests/test_examples.py`` runs this one
against the fake server).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tencent_chat_robots import TencentChat
from tencent_chat_robots.callbacks import C2CMessage, GroupMention, RobotCallbacks

SDKAPPID = int(os.environ["TENCENT_CHAT_SDKAPPID"])
chat = TencentChat(SDKAPPID)
bot = RobotCallbacks(sdkappid=SDKAPPID, token=os.environ.get("TENCENT_CHAT_CALLBACK_TOKEN"))
# Shown after the text written so far if the model fails mid-answer.
CUT_SHORT = " … (sorry, I lost my train of thought)"


async def model(prompt: str) -> AsyncIterator[str]:
    """A stand-in for a language model's token stream (OpenAI, Hunyuan, a local model)."""
    answer = f"You asked: {prompt!r}. Here is an answer, written one word at a time."
    for word in answer.split(" "):
        await asyncio.sleep(0.03)
        yield word + " "


@bot.on_c2c_message
async def answer(event: C2CMessage) -> None:
    # write() never waits for the network: the stream sends what was written so far
    # at most every 0.2 s, and finishes it when the block ends (or fails, or is cancelled).
    async with chat.stream_reply(event.robot, event.sender, error_suffix=CUT_SHORT) as reply:
        async for token in model(event.text):
            await reply.write(token)


@bot.on_group_mention
async def mentioned(event: GroupMention) -> None:
    robot = event.robots[0]
    async with chat.stream_group_reply(event.group_id, from_account=robot) as reply:
        async for token in model(event.text):
            await reply.write(token)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    # On shutdown, running answers get 10 s to finish their streams; closing the client
    # then finishes any stream still open (its text so far, marked finished).
    await bot.aclose(timeout=10.0)
    await chat.aclose()


app = FastAPI(lifespan=lifespan)
app.add_route("/tencent/callback", bot, methods=["POST"])


@app.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {"ok": not chat.closed}
