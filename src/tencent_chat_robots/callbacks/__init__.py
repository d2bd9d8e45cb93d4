"""Robots that hear: Tencent Chat's robot callbacks, verified, de-duplicated, handled once.

>>> bot = RobotCallbacks(sdkappid=1400000000, token="...")
>>> @bot.on_c2c_message
... async def answer(event: C2CMessage) -> None:
...     await chat.send_c2c_message(event.robot, event.sender, f"you said: {event.text}")
>>> app.mount("/tencent/callback", bot)  # an ASGI app; or await bot.dispatch(query, body)

``RedisDedupStore`` needs the ``redis`` extra only when it is made from a URL.
"""

from ._dedup import DedupStore, MemoryDedupStore, RedisDedupStore
from ._events import C2CMessage, Event, GroupMention, SignalMessage, UnknownEvent
from ._receiver import Answer, RobotCallbacks

__all__ = [
    "Answer",
    "C2CMessage",
    "DedupStore",
    "Event",
    "GroupMention",
    "MemoryDedupStore",
    "RedisDedupStore",
    "RobotCallbacks",
    "SignalMessage",
    "UnknownEvent",
]

# The public classes present themselves as this package's, as the root's do.
for _class in (
    C2CMessage,
    GroupMention,
    MemoryDedupStore,
    RedisDedupStore,
    RobotCallbacks,
    SignalMessage,
    UnknownEvent,
):
    _class.__module__ = __name__
del _class
