"""The fake server's HTTP face: a raw ASGI app applying the REST protocol to :class:`ChatState`.

Every request goes through these checks, first failure wins:

1. Not ``POST``, path not ``/v4/{service}/{command}`` or not a path of the SDK's
   endpoint table -> 60002. (Not an arrival: no endpoint to count it against.)
2. The arrival is counted against the endpoint's 1-second window at receipt time
   (+ uniform(0, ``latency_spread``)).
3. Scripted dropped connection -> no answer (``after_processing`` ones run 5-9 first).
4. Scripted HTTP 502 -> an HTML error page.
5. More arrivals than the endpoint's limit (``rate_limits``; by default its documented
   rate: 200/s, 100/s for live_engine) in the window ``(t-1, t]``, this one included -> 60007.
6. Query string: ``sdkappid`` or ``identifier`` missing/empty -> 60012; ``sdkappid`` not an
   unsigned integer, ``random`` missing or outside 0..4294967295, or ``contenttype`` not
   ``json`` -> 60002; ``sdkappid`` not this app's -> 60006; ``usersig`` missing/empty ->
   70002; ``verify_usersig`` failure -> its code (70003, 70014, 70013, 70009, 70001);
   ``identifier`` not the app admin -> 60010.
7. A scripted error code, else an internal error (10002, or 100001 for room_engine and
   live_engine) at ``error_rate``.
8. Body not JSON or not a JSON object -> 60003.
9. The endpoint's own rules (:mod:`._state`).

The fake's own read-only routes, ``GET /_fake/state``, ``GET /_fake/messages`` and
``GET /_fake/calls`` (see :meth:`FakeApp.inspect`), are not Tencent APIs: no Tencent path
starts with ``/_fake``.
They are answered before check 1, take no latency, and are neither arrivals nor
records: they never count against a rate limit nor appear in :attr:`FakeApp.calls`.

Checks 1-2 and the gateway faults 3-4 come before the rate limit because they model what
happens in front of the API; the limit comes before authentication because the server
counts every arrival, authenticated or not. Scripted faults (3, 4, 7) are aimed at an
endpoint and/or the objects a body names (:class:`~._faults.Target`); a call takes the
earliest registered one aimed at it. State changes happen at receipt; the latency
(``fake.latency`` plus the added latencies aimed at the call) is slept afterwards, before
the answer (or the drop). Every answer of a ``room_engine_http_srv`` or
``live_engine_http_srv`` path carries a ``RequestId``, failures included.

Callbacks a request causes (``Bot.OnC2CMessage`` for a ``sendmsg`` to a robot) are taken
from the state under the lock with the answer, and handed to :attr:`FakeApp.after_answer`
once the answer is sent (or dropped): delivering them is the caller's business
(:mod:`._deliver`), outside the lock.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from itertools import count, islice
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from .._exceptions import AuthenticationError
from .._usersig import verify_usersig
from ._faults import ConnectionDropped, FaultPlan
from ._records import CallbackEvent
from ._state import ENDPOINTS, Answer, ChatState, carries_request_id, internal_error_code
from ._window import SlidingWindow

__all__ = [
    "CALLS_PATH",
    "INSPECT_PREFIX",
    "MESSAGES_PATH",
    "STATE_PATH",
    "ASGIApp",
    "Call",
    "FakeApp",
    "Receive",
    "Scope",
    "Send",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_RANDOM = 4294967295
WINDOW = 1.0
# Windows are pruned once they hold this many arrivals; far above any sane limit.
_PRUNE_AT = 4096
_DIGITS = re.compile(r"[0-9]+")

# The fake's own routes, for people testing from other languages: read-only, and under a
# prefix no Tencent path uses (theirs are all /v4/...).
INSPECT_PREFIX = "/_fake"
STATE_PATH = f"{INSPECT_PREFIX}/state"
CALLS_PATH = f"{INSPECT_PREFIX}/calls"
MESSAGES_PATH = f"{INSPECT_PREFIX}/messages"
DEFAULT_CALLS_LIMIT = 100

_INFO = {
    60002: "invalid HTTP request: check the method, path and query parameters",
    60003: "the request body is not a JSON object",
    60006: "SDKAppID is invalid",
    60007: "the request rate exceeds the limit of the API",
    60010: "the request requires app admin permissions",
    60012: "the request needs SDKAppID and identifier",
    70002: "usersig is empty",
    # Documented codes a test may inject with fail_next, worded as the pages word them.
    10001: "the user does not log in",
    10002: "internal error, please try again",
    10003: "invalid request command",
    10004: "invalid parameters",
    10007: "insufficient permissions",
    10008: "invalid request: admin permissions required or robot limit reached",
    10010: "the group does not exist or was dismissed",
    10015: "invalid group ID",
    40006: "internal error while setting the profile, try again later",
    40601: "the profile field exceeds the length limit of 500 bytes",
    70398: "the number of accounts exceeds the limit",
    100001: "internal server error, please retry",
    100002: "invalid parameter",
    100004: "the room does not exist or was dismissed",
    100005: "non-room member",
    100006: "insufficient operation permissions",
    100700: "the number of robots has reached the limit",
}
_BAD_GATEWAY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>stgw</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_JSON = b"application/json"
_HTML = b"text/html"


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the fake saw it.

    ``time`` is the arrival time the rate limit counted (clock + jitter); ``body`` the
    parsed JSON, or the raw bytes if it was not JSON; ``error_code`` ``None`` when no JSON
    answer was sent (502 or dropped); ``http_status`` ``None`` when dropped; ``fault`` is
    ``"bad_gateway"`` or ``"dropped"`` for injected network faults.
    """

    endpoint: str
    time: float
    body: Any
    error_code: int | None
    http_status: int | None = 200
    fault: str | None = None


class Reply(NamedTuple):
    """What to send back; ``dropped`` means close the connection instead."""

    status: int
    body: bytes
    content_type: bytes = _JSON
    dropped: bool = False
    headers: tuple[tuple[bytes, bytes], ...] = ()
    events: tuple[CallbackEvent, ...] = ()
    latency: float = 0.0  # seconds to wait before answering (or dropping)


_NOT_JSON = object()


def _parse_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # also UnicodeDecodeError; absurdly nested JSON
        return _NOT_JSON


class FakeApp:
    """The ASGI callable. Request handling is synchronous and done under ``lock``."""

    def __init__(
        self,
        *,
        sdkappid: int,
        secret_key: str,
        admin: str,
        state: ChatState,
        faults: FaultPlan,
        rate_limits: Mapping[str, int | None],
        clock: Callable[[], float],
        lock: threading.Lock,
        keep_history: int | None = None,
    ) -> None:
        self.sdkappid = sdkappid
        self.secret_key = secret_key
        self.admin = admin
        self.state = state
        self.faults = faults
        # Per endpoint path: the most arrivals allowed in any second (None, or a path
        # left out: no limit).
        self.rate_limits = dict(rate_limits)
        self.clock = clock
        self.lock = lock
        # A server left running (the fake-server command) keeps only the latest records.
        self.keep_history = keep_history
        self.calls: collections.deque[Call] = collections.deque(maxlen=keep_history)
        # The limiter's windows are pruned; the history ones keep every arrival for tests
        # and are what reset_calls() clears, so a reset never loosens the limit.
        self.limit_windows = {ep: SlidingWindow(WINDOW) for ep in ENDPOINTS}
        self.history = {ep: SlidingWindow(WINDOW) for ep in ENDPOINTS}
        self._seq = count(1)
        # Called after each answer to a Tencent path (in the event loop, lock not held)
        # with the callbacks the request caused, if any.
        self.after_answer: Callable[[tuple[CallbackEvent, ...]], None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client left before sending its request
        method, path, query = scope["method"], scope["path"], scope.get("query_string", b"")
        inspection = _is_inspection(path)
        if inspection:
            reply = self.inspect(method, path, query)
        else:
            reply = self.handle(method, path, query, body)
            if reply.latency:
                await asyncio.sleep(reply.latency)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", reply.content_type),
                    (b"content-length", str(len(reply.body)).encode()),
                    *reply.headers,
                ],
            }
        )
        if reply.dropped:
            self._hand_over(reply.events)  # processed: Chat calls back all the same
            # Raising after the start makes uvicorn close the connection mid-response
            # (raising before it would get a 500 page instead).
            raise ConnectionDropped("connection dropped by fault injection")
        await send({"type": "http.response.body", "body": reply.body})
        if not inspection:
            self._hand_over(reply.events)

    def _hand_over(self, events: tuple[CallbackEvent, ...]) -> None:
        if self.after_answer is not None:
            self.after_answer(events)

    def inspect(self, method: str, path: str, query: bytes) -> Reply:
        """The fake's own read-only routes (not Tencent APIs); nothing is counted or logged.

        ``GET /_fake/state``: :meth:`ChatState.snapshot` (robots with their profiles,
        deleted robots, rooms, live groups and live rooms with their robots).
        ``GET /_fake/messages``: ``{"users", "groups": {id: {"type", "members"}},
        "conversations": [{"accounts", "messages"}], "group_messages": {id: [...]}}``
        (:meth:`ChatState.messages_snapshot`; a streamed message also has ``stream`` and
        ``stream_arrivals``).
        ``GET /_fake/calls?limit=N``: the latest N (default 100; 0 for none) of the calls
        kept, oldest first, as ``{"now", "kept", "calls": [{"endpoint", "time",
        "error_code", "http_status", "fault", "body"}]}``; ``time`` and ``now`` are the
        fake's clock (seconds, monotonic by default: compare them, not the wall clock);
        ``body`` is the request's JSON, or ``raw_body`` (text) when it was not JSON. The
        query string, where the UserSig travels, is never recorded. Other paths under
        ``/_fake`` answer 404, other methods 405: JSON ``{"error": ...}`` either way.
        """
        if path not in (STATE_PATH, MESSAGES_PATH, CALLS_PATH):
            return _inspection_reply(
                404,
                {
                    "error": f"no route {path}: the fake's own are GET {STATE_PATH},"
                    f" GET {MESSAGES_PATH} and GET {CALLS_PATH}"
                },
            )
        if method != "GET":
            return _inspection_reply(
                405, {"error": f"{path} answers GET only"}, ((b"allow", b"GET"),)
            )
        if path == STATE_PATH:
            with self.lock:
                state = self.state.snapshot()
            return _inspection_reply(200, state)
        if path == MESSAGES_PATH:
            with self.lock:
                messages = self.state.messages_snapshot()
            return _inspection_reply(200, messages)
        limit = _calls_limit(query)
        if limit is None:
            return _inspection_reply(
                400, {"error": "limit must be a whole number >= 0 (calls to list)"}
            )
        with self.lock:
            kept = len(self.calls)
            latest = list(islice(reversed(self.calls), limit))[::-1]
            now = self.clock()
        document = {"now": now, "kept": kept, "calls": [_call_document(c) for c in latest]}
        return _inspection_reply(200, document)

    def handle(self, method: str, path: str, query: bytes, raw_body: bytes) -> Reply:
        """Process one request synchronously (all but the latency, which the reply
        carries) and log it."""
        now = self.clock()
        body = _parse_body(raw_body)
        logged_body = raw_body if body is _NOT_JSON else body
        endpoint = path[4:] if path.startswith("/v4/") else path
        with self.lock:
            if method != "POST" or endpoint not in self.limit_windows:
                answer = Answer(60002, f"invalid request: {method} {path}")
                reply = self._answer(endpoint, now, logged_body, answer)
                latency = self.faults.latency  # no endpoint: no added latency is aimed at it
            else:
                reply = self._receive(endpoint, now, query, body, logged_body)
                latency = self.faults.latency_for(endpoint, body)
        return reply._replace(latency=latency) if latency else reply

    def _receive(
        self, endpoint: str, now: float, query: bytes, body: Any, logged_body: Any
    ) -> Reply:
        """Checks 2 to 9 (see the module docstring) of a POST to a Tencent path."""
        arrival = now + self.faults.arrival_offset()
        in_window = self._count(endpoint, now, arrival)
        drop = self.faults.take_drop(endpoint, body)
        if drop is False:
            self.calls.append(Call(endpoint, arrival, logged_body, None, None, "dropped"))
            # Never sent; a non-empty length leaves the client waiting for it.
            return Reply(200, b"{}", dropped=True)
        if drop is None and self.faults.take_bad_gateway(endpoint, body):
            self.calls.append(Call(endpoint, arrival, logged_body, None, 502, "bad_gateway"))
            return Reply(502, _BAD_GATEWAY, _HTML)
        answer = self._process(endpoint, in_window, query, body, arrival)
        events = tuple(self.state.take_events())
        reply = self._answer(endpoint, arrival, logged_body, answer, dropped=drop is True)
        return reply._replace(events=events) if events else reply

    def _count(self, endpoint: str, now: float, arrival: float) -> int:
        window = self.limit_windows[endpoint]
        in_window = window.add(arrival)
        self.history[endpoint].add(arrival)
        if self.keep_history is not None:
            self.history[endpoint].keep_last(self.keep_history)
        if len(window) > _PRUNE_AT:
            # Jitter only delays arrivals, so none can land before ``now`` from here on.
            window.discard_through(now - WINDOW)
        return in_window

    def _process(
        self, endpoint: str, in_window: int, query: bytes, body: Any, arrival: float
    ) -> Answer:
        limit = self.rate_limits.get(endpoint)
        if limit is not None and in_window > limit:
            return Answer(60007, _INFO[60007])
        code, info = self._check_query(query)
        if code:
            return Answer(code, info)
        code = self.faults.take_error(endpoint, body, internal_error_code(endpoint))
        if code:
            return Answer(code, _INFO.get(code, "injected error"))
        if not isinstance(body, dict):
            return Answer(60003, _INFO[60003])
        return self.state.handle(endpoint, body, arrival)

    def _check_query(self, query: bytes) -> tuple[int, str]:
        params: dict[str, str] = {}
        for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            params.setdefault(key, value)
        sdkappid = params.get("sdkappid", "")
        identifier = params.get("identifier", "")
        if not sdkappid or not identifier:
            return 60012, _INFO[60012]
        if not _DIGITS.fullmatch(sdkappid):
            return 60002, "sdkappid must be an unsigned integer"
        nonce = params.get("random", "")
        if not _DIGITS.fullmatch(nonce) or int(nonce) > MAX_RANDOM:
            return 60002, "random must be an integer from 0 to 4294967295"
        if params.get("contenttype") != "json":
            return 60002, "contenttype must be json"
        if int(sdkappid) != self.sdkappid:
            return 60006, _INFO[60006]
        usersig = params.get("usersig", "")
        if not usersig:
            return 70002, _INFO[70002]
        try:
            verify_usersig(
                usersig, sdkappid=self.sdkappid, secret_key=self.secret_key, identifier=identifier
            )
        except AuthenticationError as err:
            return err.code, err.info
        if identifier != self.admin:
            return 60010, _INFO[60010]
        return 0, ""

    def _answer(
        self, endpoint: str, time: float, body: Any, answer: Answer, *, dropped: bool = False
    ) -> Reply:
        envelope: dict[str, Any] = {
            "ActionStatus": "FAIL" if answer.code else "OK",
            "ErrorCode": answer.code,
            "ErrorInfo": answer.info,
        }
        if carries_request_id(endpoint):
            envelope["RequestId"] = f"Id-{uuid.uuid4().hex}-O-Seq-{next(self._seq)}"
        if answer.fields:
            envelope.update(answer.fields)
        self.calls.append(
            Call(
                endpoint,
                time,
                body,
                answer.code,
                None if dropped else 200,
                "dropped" if dropped else None,
            )
        )
        payload = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        return Reply(200, payload, dropped=dropped)


def _is_inspection(path: str) -> bool:
    return path == INSPECT_PREFIX or path.startswith(INSPECT_PREFIX + "/")


def _calls_limit(query: bytes) -> int | None:
    """``limit`` of ``/_fake/calls`` (default 100); ``None`` if it is not a whole number."""
    values = [
        v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if k == "limit"
    ]
    if not values:
        return DEFAULT_CALLS_LIMIT
    if not _DIGITS.fullmatch(values[0]):
        return None
    # More than the calls a fake can keep means all of them (and int() and islice()
    # refuse numbers past a few thousand digits, or past sys.maxsize).
    return int(values[0]) if len(values[0]) <= 18 else sys.maxsize


def _call_document(call: Call) -> dict[str, Any]:
    document: dict[str, Any] = {
        "endpoint": call.endpoint,
        "time": call.time,
        "error_code": call.error_code,
        "http_status": call.http_status,
        "fault": call.fault,
    }
    if isinstance(call.body, bytes):
        document["raw_body"] = call.body.decode("utf-8", "replace")
        return document
    try:
        # Strictly JSON (a body of NaN parses in Python but not in every language).
        json.dumps(call.body, allow_nan=False)
    except (ValueError, RecursionError):
        document["raw_body"] = "(not representable as strict JSON)"
    else:
        document["body"] = call.body
    return document


def _inspection_reply(
    status: int, document: object, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> Reply:
    # ASCII: a lone surrogate (JSON allows "\ud800" in a body or an id) stays escaped.
    payload = json.dumps(document, separators=(",", ":")).encode()
    return Reply(status, payload, headers=((b"cache-control", b"no-store"), *headers))


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
