"""``TencentChat``: the public client, one thin coroutine per documented endpoint."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import attrs
import httpx

from ._auth import UserSigProvider
from ._background import Background
from ._base_client import RequestSender
from ._bulk import BulkGroup, BulkRun
from ._calls import Call
from ._config import (
    require_number,
    resolve_admin,
    resolve_endpoint_root,
    resolve_sdkappid,
    resolve_secret,
)
from ._constants import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RATE_LIMIT,
    DEFAULT_TIMEOUT,
    MAX_RATE_LIMIT,
    MAX_TIMEOUT,
)
from ._elements import Element
from ._endpoints import ENDPOINTS, Endpoint, resolve_rates
from ._exceptions import ValidationError
from ._health import ClientHealth, client_health
from ._lifecycle import finish_despite_cancel
from ._limiter import Limiter, RateLimiter, adapt_limiter
from ._logs import logger
from ._messages import SentGroupMessage, SentMessage
from ._models import ActionResult, AttemptRecord
from ._observers import OnAttempt
from ._options import CallOptions, Priority
from ._redact import box, without_userinfo
from ._regions import Region
from ._sentry import install_if_loaded as install_sentry_scrubber
from ._stream_reply import (
    GROUP_INTERVAL,
    IDLE_TIMEOUT,
    MIN_INTERVAL,
    OpenStreams,
    StreamReply,
    open_stream,
)
from ._stream_wires import in_group, one_to_one
from ._transport import AiohttpTransport, HttpxTransport, Transport, pool_size

__all__ = ["Endpoint", "TencentChat"]


def _limiter_for(rate_limit: float | Mapping[str, float]) -> RateLimiter:
    """The built-in limiter for ``rate_limit`` (a number, or rates of named APIs)."""
    if isinstance(rate_limit, Mapping):
        limiter = RateLimiter(
            DEFAULT_RATE_LIMIT, rates=resolve_rates(rate_limit, documented_only=True)
        )
    else:
        rate_limit = require_number("rate_limit", rate_limit, minimum=1, maximum=MAX_RATE_LIMIT)
        limiter = RateLimiter(rate_limit)
    risky = limiter.above_share()
    if risky is not None:
        spec, pace = risky
        logger.warning(
            "rate_limit=%r paces %s at %g/s, above 95%% of its documented %d/s:"
            " network jitter can bunch requests into 60007 refusals",
            rate_limit,
            spec.method,
            pace,
            spec.documented_rate,
        )
    return limiter


class _NotGiven:
    """``with_options(max_wait=...)`` left out, as opposed to ``None`` (no limit)."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()
_METHODS = {spec.path: spec.method for spec in ENDPOINTS}

T = TypeVar("T")


class TencentChat:
    """Async client for the chatbot REST APIs of Tencent Cloud Chat.

    Credentials and region fall back to ``TENCENT_CHAT_SDKAPPID``,
    ``TENCENT_CHAT_SECRET_KEY``, ``TENCENT_CHAT_ADMIN`` and ``TENCENT_CHAT_REGION``.
    Give ``secret_key`` (the client signs and renews the admin UserSig) or a fixed
    ``usersig``. ``base_url`` overrides the region (a proxy, or the fake server).

    Each API is paced, by default, at 95% of its own documented rate in any sliding
    second (190 calls for the 200/s APIs, 95 for the 100/s live-room ones), leaving room
    for network jitter. ``rate_limit=N`` gives the pace of the 200/s APIs, and the others
    the same share of their own; no API goes above its documented rate unless named:
    ``rate_limit={"add_robot_to_room": 400}`` paces the APIs named exactly so (a quota
    Tencent raised is per API) and the rest by default. ``None`` turns pacing off.
    ``limiter`` replaces the built-in limiter, e.g. with one shared between processes.
    Internal errors, dropped connections and time-outs are retried ``max_retries``
    times. ``http_client`` sends through your own ``httpx.AsyncClient`` (never closed
    by the SDK); by default a pooled aiohttp session is used. ``max_in_flight`` bounds
    one endpoint's requests on the wire at once. ``on_attempt`` is called with an
    :class:`AttemptRecord` after every try (for metrics: latency, retries).

    ``priority`` (``"interactive"``, the default, or ``"bulk"``) is the class calls
    wait in for their endpoint's slots and rate permits: a waiting interactive call
    always goes first. ``max_wait`` is the most, in seconds, one attempt may wait for
    them (``None``: no limit); past it the call raises :class:`QueueTimeoutError`
    without sending. ``deadline`` is the most, in seconds, a whole call may take, waits,
    attempts and backoff included (``None``: no limit); past it the call raises
    :class:`DeadlineExceededError`. :meth:`with_options` makes a view with other
    settings; :meth:`health` says whether the client can serve.

    Use it as ``async with TencentChat(...) as chat:`` or call :meth:`aclose`.
    """

    def __init__(
        self,
        sdkappid: int | str | None = None,
        secret_key: str | None = None,
        *,
        admin: str | None = None,
        usersig: str | None = None,
        region: Region | str | None = None,
        base_url: str | None = None,
        rate_limit: float | Mapping[str, float] | None = DEFAULT_RATE_LIMIT,
        limiter: Limiter | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
        transport: Transport | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        on_attempt: Callable[[AttemptRecord], object] | None = None,
        priority: Priority = "interactive",
        max_wait: float | None = None,
        deadline: float | None = None,
    ) -> None:
        # Boxed before anything can fail: an error tracker records this frame's locals.
        secret_key, usersig = box(secret_key), box(usersig)  # type: ignore[assignment]
        install_sentry_scrubber()  # from now on, also if this construction fails
        self.sdkappid = resolve_sdkappid(sdkappid)
        self.admin = resolve_admin(admin)
        boxed_key, boxed_sig = resolve_secret(secret_key, usersig)
        self.base_url, self.region = resolve_endpoint_root(base_url, region)
        self._options = CallOptions(
            priority=priority,
            max_wait=max_wait,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
        )
        self._parent: TencentChat | None = None  # the client a with_options view came from
        max_in_flight = require_number("max_in_flight", max_in_flight, minimum=1, integer=True)
        if on_attempt is not None and (
            inspect.iscoroutinefunction(on_attempt) or not callable(on_attempt)
        ):
            # Called synchronously after every try: a coroutine would never be awaited.
            raise ValidationError(
                "on_attempt must be a plain function (it may schedule a task of its own)"
            )
        if http_client is not None and transport is not None:
            raise ValidationError("pass http_client= or transport=, not both")

        if limiter is not None and rate_limit not in (None, DEFAULT_RATE_LIMIT):
            # A limiter paces by its own rates: a rate_limit beside it would do nothing.
            raise ValidationError(
                "pass limiter= or rate_limit=, not both (give the limiter its rates)"
            )
        if limiter is None and rate_limit is not None:
            limiter = _limiter_for(rate_limit)
        # A shared limiter namespaced by the client's own app. Looked up on the class: a
        # mock standing in for a limiter has every attribute.
        if callable(getattr(type(limiter), "for_app", None)):
            limiter = limiter.for_app(self.sdkappid)  # type: ignore[union-attr]
        self.rate_limit = limiter.rate if isinstance(limiter, RateLimiter) else None
        self.limiter = limiter

        self._streams = OpenStreams()  # streamed replies not yet ended, finished on close
        self._owns_transport = transport is None
        if transport is None:
            if http_client is not None:
                transport = HttpxTransport(http_client, owns_client=False)
            else:
                transport = AiohttpTransport()
        self._transport = transport
        pool = pool_size(transport)
        if pool is not None:
            # Every endpoint may be busy at once: sharing the pool between them means no
            # request ever waits for a connection after taking its rate permit.
            max_in_flight = min(max_in_flight, max(1, pool // len(ENDPOINTS)))
        self.max_in_flight = max_in_flight
        self._sender = RequestSender(
            base_url=self.base_url,
            sdkappid=self.sdkappid,
            admin=self.admin,
            usersig=UserSigProvider(
                sdkappid=self.sdkappid, admin=self.admin, secret_key=boxed_key, usersig=boxed_sig
            ),
            transport=transport,
            limiter=None if limiter is None else adapt_limiter(limiter),
            max_in_flight=max_in_flight,
            observers=() if on_attempt is None else (OnAttempt(on_attempt),),
            operations=_METHODS,
        )

    def __repr__(self) -> str:
        # A traceback with locals reprs ``self`` of an __init__ that failed half-way.
        def shown(name: str) -> str:
            if not hasattr(self, name):
                return f"{name}=<unset>"
            value = getattr(self, name)
            if name == "base_url":  # a proxy's may carry user:password
                value = without_userinfo(value)
            return f"{name}={value!r}"

        fields = ("sdkappid", "admin", "base_url", "limiter")
        return f"TencentChat({', '.join(map(shown, fields))}, options={self.options!r})"

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called (a closed client sends nothing more)."""
        return self._sender.closed

    def health(self) -> ClientHealth:
        """Whether this client can serve, read from memory (no request is made): for a
        service's readiness route, also one run in a thread. See :class:`ClientHealth`."""
        return client_health(
            closed=self.closed,
            limiter=self.limiter,
            pending=self._sender.lifecycle.pending,
            open_streams=len(self._streams.streams),
            methods=_METHODS,
            loop=self._sender.lifecycle.loop,
        )

    @property
    def options(self) -> CallOptions | None:
        """The settings this client's calls are made with (``None`` while constructing)."""
        return getattr(self, "_options", None)

    def with_options(
        self,
        *,
        priority: Priority | None = None,
        max_wait: float | None = NOT_GIVEN,
        timeout: float | None = None,
        max_retries: int | None = None,
        deadline: float | None = NOT_GIVEN,
    ) -> TencentChat:
        """This client with other settings for its calls; arguments left out are kept.

        The view shares everything else with this client (connections, signature,
        limiter, observers, lifecycle) and cannot be closed: ``async with view`` and
        ``view.aclose()`` raise :class:`ValidationError`, so a request handler cannot
        close the application's client by mistake. Close the client that made it.
        ``max_wait=None`` and ``deadline=None`` mean no limit; ``None`` for the others
        keeps the client's.

        >>> urgent = chat.with_options(max_wait=0.5, timeout=2.0, deadline=1.0)
        >>> bulk = chat.with_options(priority="bulk")
        """
        current = self._options
        options = CallOptions(
            priority=current.priority if priority is None else priority,
            max_wait=current.max_wait if max_wait is NOT_GIVEN else max_wait,
            timeout=current.timeout if timeout is None else timeout,
            max_retries=current.max_retries if max_retries is None else max_retries,
            deadline=current.deadline if deadline is NOT_GIVEN else deadline,
        )
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._options = options
        view._parent = self._parent or self
        return view

    def _refuse_if_view(self, doing: str) -> None:
        if getattr(self, "_parent", None) is not None:
            raise ValidationError(
                f"{doing} a view made by with_options(), which shares its client's"
                " connections and cannot be closed; close the client that made it"
                " (once, where it was made: an application's lifespan)"
            )

    async def __aenter__(self) -> TencentChat:
        self._refuse_if_view("async with on")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self, *, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Close the client: no request starts from now on.

        Open streamed replies are finished first (their rest sent, within ``timeout``).
        Calls waiting for a slot, a rate permit or a retry's backoff raise
        :class:`ClientClosedError` at once; requests already on the wire get ``timeout``
        seconds to finish, then are cancelled (and raise it too). Then the connections
        the client opened are closed (not an ``http_client`` you passed in). Calls made
        afterwards raise :class:`ClientClosedError`. A view made by :meth:`with_options`
        cannot be closed (:class:`ValidationError`): close the client that made it.
        """
        self._refuse_if_view("aclose() of")
        timeout = require_number("timeout", timeout, minimum=0, maximum=MAX_TIMEOUT)
        try:
            try:
                streams: OpenStreams | None = getattr(self, "_streams", None)
                if streams is not None and not streams.closing:
                    loop = asyncio.get_running_loop()
                    started = loop.time()
                    await streams.close(timeout)
                    timeout = max(0.0, timeout - (loop.time() - started))
            finally:  # closed even if cancelled while the streams were finishing
                await self._sender.lifecycle.aclose(timeout)
        finally:
            if self._owns_transport:
                await finish_despite_cancel(self._transport.aclose())

    # -- any call, and streams of them ------------------------------------------------

    async def call(self, call: Call[T]) -> T:
        """Make the call ``call`` describes: ``await chat.call(Call.delete_robot(r))``."""
        return await self._make(call, self._options)

    async def _make(
        self,
        call: Call[T],
        options: CallOptions,
        scope: BulkGroup | None = None,
    ) -> T:
        """Make ``call`` with ``options``; a bulk run's calls are in its ``scope``."""
        if not isinstance(call, Call):
            raise ValidationError(f"expected a Call, got {type(call).__name__}")
        spec = call.spec
        answer = await self._sender.request(
            spec.path,
            call.body,
            spec.answer,
            options,
            scope=scope,
            observer=scope,
            also_paced=call.also_paced,
        )
        return call.result(answer)

    def rate_for(self, endpoint: str) -> float | None:
        """The calls per sliding second ``endpoint`` (a path) is paced at (``None``: unknown)."""
        rate_for = getattr(self.limiter, "rate_for", None)
        if callable(rate_for):
            return float(rate_for(endpoint))
        rate = getattr(self.limiter, "rate", None)
        return float(rate) if isinstance(rate, (int, float)) else None

    def bulk(
        self,
        calls: Iterable[Call[Any]] | AsyncIterable[Call[Any]],
        *,
        ordered: bool = False,
        concurrency: int | None = None,
        total: int | None = None,
        priority: Priority = "bulk",
        max_wait: float | None = NOT_GIVEN,
        deadline: float | None = NOT_GIVEN,
    ) -> BulkRun:
        """Run a stream of calls with a few workers; iterate over one outcome per call.

        >>> async for outcome in chat.bulk(Call.add_robot_to_room(r, bot) for r in rooms):
        ...     if outcome.error: print(outcome.index, outcome.call, outcome.error)

        ``calls`` (any iterable or async iterable of :class:`Call`) is read lazily, one
        item as a worker becomes free, so an endless generator works. Each item gets
        exactly one :class:`BulkOutcome`, with its ``result`` or its ``error``; outcomes
        come as calls finish (``ordered=True``: in the order of ``calls``). Calls wait
        in the ``priority`` class (``"bulk"``: interactive calls go first). The workers
        number ``concurrency``, or by default follow the endpoints' rates and the
        latency observed. ``max_wait`` and ``deadline`` bound each call as in
        :meth:`with_options` (left out: those of the client or view this is called on,
        so a web service's short ``max_wait`` would refuse a long job's waits; pass
        ``max_wait=None``); ``timeout`` and ``max_retries`` are always the client's or
        view's. The run has a trace of its own: a root span linked to the caller's, and
        a Sentry scope of its own, since it outlives the request that starts it. See
        :class:`BulkRun` for stopping and progress counts.
        """
        options = attrs.evolve(self._options, priority=priority)
        if max_wait is not NOT_GIVEN:
            options = attrs.evolve(options, max_wait=max_wait)
        if deadline is not NOT_GIVEN:
            options = attrs.evolve(options, deadline=deadline)
        telemetry = self._sender.telemetry

        async def make(call: Call[Any], group: BulkGroup) -> Any:
            return await self._make(call, options, group)

        return BulkRun(
            calls,
            make=make,
            lifecycle=self._sender.lifecycle,
            max_in_flight=self.max_in_flight,
            rate_for=lambda endpoint: self.rate_for(endpoint) or math.inf,
            ordered=ordered,
            concurrency=concurrency,
            total=total,
            background=lambda: Background(telemetry, {"tencent_chat.priority": priority}),
        )

    # -- openim_robot_http_svc -------------------------------------------------------

    async def create_robot(
        self,
        user_id: str,
        *,
        nick: str | None = None,
        face_url: str | None = None,
        self_signature: str | None = None,
    ) -> ActionResult:
        """Create a chatbot account (idempotent by ``user_id``, which starts with ``@RBT#``)."""
        return await self.call(
            Call.create_robot(user_id, nick=nick, face_url=face_url, self_signature=self_signature)
        )

    async def get_all_robots(self) -> list[str]:
        """The UserIDs of every valid chatbot account of the app."""
        return await self.call(Call.get_all_robots())

    async def delete_robot(self, robot_account: str) -> ActionResult:
        """Mark a chatbot account invalid (its UserID stays taken)."""
        return await self.call(Call.delete_robot(robot_account))

    # -- room_engine_http_srv ----------------------------------------------------------

    async def add_robot_to_room(self, room_id: str, robot_account: str) -> ActionResult:
        """Add a robot to a room (``room_engine_http_srv/add_robot``)."""
        return await self.call(Call.add_robot_to_room(room_id, robot_account))

    async def remove_robot_from_room(self, room_id: str, robot_account: str) -> ActionResult:
        """Take a robot out of a room (``room_engine_http_srv/delete_robot``)."""
        return await self.call(Call.remove_robot_from_room(room_id, robot_account))

    # -- group_open_avchatroom_http_svc ----------------------------------------------

    async def add_robots_to_live_group(
        self, group_id: str, robot_accounts: Sequence[str]
    ) -> ActionResult:
        """Pin robots to a live-streaming group's online member list (AVChatRoom only)."""
        return await self.call(Call.add_robots_to_live_group(group_id, robot_accounts))

    async def remove_robots_from_live_group(
        self, group_id: str, robot_accounts: Sequence[str]
    ) -> ActionResult:
        """Take robots off a live-streaming group's online member list."""
        return await self.call(Call.remove_robots_from_live_group(group_id, robot_accounts))

    # -- live_engine_http_srv (TUILiveKit live rooms) ----------------------------------

    async def add_robots_to_live_room(
        self, room_id: str, robot_accounts: Sequence[str]
    ) -> ActionResult:
        """Add up to three robots to a TUILiveKit live room (``live_engine_http_srv/add_robot``)."""
        return await self.call(Call.add_robots_to_live_room(room_id, robot_accounts))

    async def remove_robots_from_live_room(
        self, room_id: str, robot_accounts: Sequence[str]
    ) -> ActionResult:
        """Take robots out of a TUILiveKit live room (``live_engine_http_srv/del_robot``)."""
        return await self.call(Call.remove_robots_from_live_room(room_id, robot_accounts))

    async def get_live_room_robots(self, room_id: str) -> list[str]:
        """The robots in a TUILiveKit live room (``live_engine_http_srv/get_robot``)."""
        return await self.call(Call.get_live_room_robots(room_id))

    # -- messages: a robot's replies (openim, group_open_http_svc) ---------------------

    async def send_c2c_message(
        self,
        from_account: str | None,
        to_account: str,
        body: str | Element | Sequence[Element],
        *,
        msg_lifetime: int | None = None,
        sync_other_machine: int | None = None,
        cloud_custom_data: str | None = None,
        forbid_callbacks: Sequence[str] = (),
        send_control: Sequence[str] = (),
        offline_push: Mapping[str, Any] | None = None,
        msg_seq: int | None = None,
        random: int | None = None,
    ) -> SentMessage:
        """Send a one-to-one message as ``from_account`` (the robot; ``None``: the admin).

        ``body`` is a ``str`` (one text element), an element, or a list of them
        (:class:`TextElem`, :class:`CustomElem`, or a raw ``{"MsgType", "MsgContent"}``
        dict). The ``MsgRandom`` (``random``) and ``MsgSeq`` are numbered once and kept
        by every retry, so a retried send is dropped by the server as a repeat, not shown
        twice (the server orders one second's messages by ``MsgSeq``: numbered in the
        order they are made).
        """
        return await self.call(
            Call.send_c2c_message(
                from_account,
                to_account,
                body,
                msg_lifetime=msg_lifetime,
                sync_other_machine=sync_other_machine,
                cloud_custom_data=cloud_custom_data,
                forbid_callbacks=forbid_callbacks,
                send_control=send_control,
                offline_push=offline_push,
                msg_seq=msg_seq,
                random=random,
            )
        )

    async def send_group_message(
        self,
        group_id: str,
        body: str | Element | Sequence[Element],
        *,
        from_account: str | None = None,
        random: int | None = None,
        online_only: bool = False,
        msg_priority: str | None = None,
        cloud_custom_data: str | None = None,
        forbid_callbacks: Sequence[str] = (),
        send_control: Sequence[str] = (),
        offline_push: Mapping[str, Any] | None = None,
    ) -> SentGroupMessage:
        """Send a message to a group as ``from_account`` (the robot; ``None``: the admin).

        Paced per API and per group (40 messages a second each group, paced at 38);
        the ``Random`` is kept by every retry, so a retry cannot post twice.
        """
        return await self.call(
            Call.send_group_message(
                group_id,
                body,
                from_account=from_account,
                random=random,
                online_only=online_only,
                msg_priority=msg_priority,
                cloud_custom_data=cloud_custom_data,
                forbid_callbacks=forbid_callbacks,
                send_control=send_control,
                offline_push=offline_push,
            )
        )

    async def modify_c2c_message(
        self,
        from_account: str,
        to_account: str,
        msg_key: str,
        *,
        body: str | Element | Sequence[Element] | None = None,
        cloud_custom_data: str | None = None,
    ) -> ActionResult:
        """Replace the body and/or custom data of a one-to-one message (by its ``msg_key``)."""
        return await self.call(
            Call.modify_c2c_message(
                from_account, to_account, msg_key, body=body, cloud_custom_data=cloud_custom_data
            )
        )

    async def send_stream_chunk(
        self,
        from_account: str,
        to_account: str,
        chunk: str,
        *,
        msg_key: str | None = None,
        finish: bool = False,
    ) -> str:
        """Send one piece of a robot's streamed one-to-one reply; returns the ``MsgKey``.

        The first piece has no ``msg_key``; each later one carries the key the first
        returned, and ``finish=True`` ends the stream. Pieces are appended in the order
        they arrive, so send one at a time. A piece whose answer was lost after it may
        have reached the server is not sent again (it could show twice): the call
        raises instead. :meth:`stream_reply` does all of this for you.
        """
        return await self.call(
            Call.send_stream_chunk(from_account, to_account, chunk, msg_key=msg_key, finish=finish)
        )

    def stream_reply(
        self,
        robot: str,
        user: str,
        *,
        min_interval: float = MIN_INTERVAL,
        idle_timeout: float | None = IDLE_TIMEOUT,
        error_suffix: str | None = None,
    ) -> StreamReply:
        """A one-to-one reply from ``robot`` to ``user``, streamed as it is written.

        >>> async with chat.stream_reply(event.robot, event.sender) as reply:
        ...     async for token in model.stream(event.text):
        ...         await reply.write(token)

        Sent through ``send_stream_msg``: the first text at once, then at most one call
        per ``min_interval`` (0.2 s, the least allowed: 5 calls a second per stream,
        counted from the previous call's answer) carrying all text written since; the
        last call finishes the stream. ``idle_timeout``: with
        nothing written for that long (10 s; ``None``: never) the stream is finished
        (the newer stream API ends one after 15 s). ``error_suffix`` is added to the
        text when the block raises. See :class:`StreamReply`.
        """
        return open_stream(
            self,
            one_to_one(robot, user),
            min_interval=min_interval,
            idle_timeout=idle_timeout,
            error_suffix=error_suffix,
            least_interval=MIN_INTERVAL,
        )

    def stream_group_reply(
        self,
        group_id: str,
        *,
        from_account: str,
        min_interval: float = GROUP_INTERVAL,
        error_suffix: str | None = None,
    ) -> StreamReply:
        """A group reply from ``from_account`` (the robot), streamed as it is written.

        The first text is sent as a group message, which is then replaced with the text
        so far (``modify_group_msg``) at most once per ``min_interval`` (1 s), within the
        group's 40 messages a second. Not for live (AVChatRoom) groups, whose messages
        cannot be modified. See :meth:`stream_reply` and :class:`StreamReply`.
        """
        return open_stream(
            self,
            in_group(group_id, from_account),
            min_interval=min_interval,
            idle_timeout=None,
            error_suffix=error_suffix,
        )

    async def modify_group_message(
        self,
        group_id: str,
        msg_seq: int,
        *,
        body: str | Element | Sequence[Element] | None = None,
        cloud_custom_data: str | None = None,
    ) -> ActionResult:
        """Replace the body and/or custom data of a group message (not in live groups)."""
        return await self.call(
            Call.modify_group_message(
                group_id, msg_seq, body=body, cloud_custom_data=cloud_custom_data
            )
        )
