"""A faithful fake Tencent Cloud Chat server for tests and benchmarks.

>>> fake = FakeTencentChat()
>>> fake.create_room("room-1")
>>> chat = fake.client()  # a TencentChat talking to the fake in-process

Simulated users talk to the app's webhook (a URL or an ASGI app), robots reply through
the REST API, and the fake keeps the conversation::

    fake.set_callback(my_asgi_app, token="xxxxyyyy")
    await fake.user_sends("user1", "@RBT#001", "hi")  # a signed Bot.OnC2CMessage
    fake.transcript("user1", "@RBT#001")  # [StoredMessage(sender="user1", ...), ...]

``percentile`` and ``max_in_window`` measure a run, as ``bench`` and the benchmarks do.
"""

from ._app import Call, FakeApp
from ._asgi_transport import ASGIAppTransport
from ._deliver import Delivery, callback_sign
from ._fake import FAKE_BASE_URL, FakeTencentChat
from ._faults import AddedLatency, ConnectionDropped
from ._records import Revision, StoredGroupMessage, StoredMessage
from ._state import ENDPOINTS
from ._stats import max_in_window, percentile
from ._window import SlidingWindow

__all__ = [
    "ENDPOINTS",
    "FAKE_BASE_URL",
    "ASGIAppTransport",
    "AddedLatency",
    "Call",
    "ConnectionDropped",
    "Delivery",
    "FakeApp",
    "FakeTencentChat",
    "Revision",
    "SlidingWindow",
    "StoredGroupMessage",
    "StoredMessage",
    "callback_sign",
    "max_in_window",
    "percentile",
]
