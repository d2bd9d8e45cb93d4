"""A faithful fake Tencent Cloud Chat server for tests and benchmarks.

>>> fake = FakeTencentChat()
>>> fake.create_room("room-1")
>>> chat = fake.client()  # a TencentChat talking to the fake in-process

``percentile`` and ``max_in_window`` measure a run, as ``bench`` and the benchmarks do.
"""

from ._app import Call, FakeApp
from ._asgi_transport import ASGIAppTransport
from ._fake import FAKE_BASE_URL, FakeTencentChat
from ._faults import ConnectionDropped
from ._state import ENDPOINTS
from ._stats import max_in_window, percentile
from ._window import SlidingWindow

__all__ = [
    "ENDPOINTS",
    "FAKE_BASE_URL",
    "ASGIAppTransport",
    "Call",
    "ConnectionDropped",
    "FakeApp",
    "FakeTencentChat",
    "SlidingWindow",
    "max_in_window",
    "percentile",
]
