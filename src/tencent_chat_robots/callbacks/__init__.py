"""Robots that hear: Tencent Chat's robot callbacks, verified, de-duplicated, handled once.

>>> bot = RobotCallbacks(sdkappid=1400000000, token="...")
>>> @bot.on_c2c_message
... async def answer(event: C2CMessage) -> None:
...     await chat.send_c2c_message(event.robot, event.sender, f"you said: {event.text}")
>>> app.add_route("/tencent/callback", bot, methods=["POST"])  # or: await bot.dispatch(query, body)

``add_route``, not ``app.mount(...)``: a mount serves ``/tencent/callback/`` and answers
the bare path the console is given with a 307 redirect, a failed callback to Tencent
Chat, whose ``Location`` echoes the query string, ``Sign`` included.

A web server's access log records each request's query string, so every callback's
``Sign`` and ``RequestTime``; with a short token, one such line lets the token be
searched for offline. Turn the access log off for this route, or filter it:
``logging.getLogger("uvicorn.access").addFilter(SignFilter())`` redacts ``Sign=``.

``RedisDedupStore`` needs the ``redis`` extra only when it is made from a URL.
"""

from ._answers import Answer
from ._dedup import DedupStore, MemoryDedupStore, RedisDedupStore
from ._events import C2CMessage, Event, GroupMention, SignalMessage, UnknownEvent
from ._load import Load
from ._logfilter import SignFilter
from ._receiver import RobotCallbacks

__all__ = [
    "Answer",
    "C2CMessage",
    "DedupStore",
    "Event",
    "GroupMention",
    "Load",
    "MemoryDedupStore",
    "RedisDedupStore",
    "RobotCallbacks",
    "SignFilter",
    "SignalMessage",
    "UnknownEvent",
]

# The public classes present themselves as this package's, as the root's do.
for _class in (
    C2CMessage,
    GroupMention,
    Load,
    MemoryDedupStore,
    RedisDedupStore,
    RobotCallbacks,
    SignFilter,
    SignalMessage,
    UnknownEvent,
):
    _class.__module__ = __name__
del _class
