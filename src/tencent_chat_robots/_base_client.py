"""The request loop: one call from a request object to a parsed result.

Per attempt: take an in-flight slot for the endpoint, take a rate permit right before
sending (so waiting for either is not part of the timeout), sign, send, check the
envelope. The loop is the only place that retries; ``_retry.retry_decision`` decides.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import cattrs
import tenacity

from ._auth import UserSigProvider
from ._constants import RATE_LIMITED_PAUSE
from ._exceptions import (
    APIError,
    BadResponseError,
    RateLimitError,
    TencentChatError,
    error_class_for,
)
from ._limiter import Limiter, PausableLimiter
from ._models import AttemptRecord, converter
from ._redact import redact
from ._retry import USERSIG_EXPIRED, RetryDecision, retry_decision
from ._transport import RawResponse, Transport

__all__ = ["RequestSender"]

logger = logging.getLogger("tencent_chat_robots")
# A library leaves output to the application: without this, Python's last-resort
# handler would print every retry warning to stderr of programs that set up no logging.
logger.addHandler(logging.NullHandler())

T = TypeVar("T")

_EXCERPT_CHARS = 200
# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _excerpt(content: bytes) -> str:
    text = content[: _EXCERPT_CHARS * 4].decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else " " for ch in text[:_EXCERPT_CHARS])
    return redact(" ".join(text.split()))


def _bad_response(
    message: str, status_code: int, content: bytes, endpoint: str
) -> BadResponseError:
    return BadResponseError(
        message, status_code=status_code, excerpt=_excerpt(content), endpoint=endpoint
    )


def parse_envelope(response: RawResponse, endpoint: str) -> dict[str, Any]:
    """The JSON object of a successful answer; raise the typed error for any other."""
    status, content = response.status_code, response.content
    if status != 200:
        raise _bad_response(f"HTTP {status} from {endpoint}", status, content, endpoint)
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        data = None
    code = data.get("ErrorCode") if isinstance(data, dict) else None
    # bool is an int subclass; a JSON true is not an error code.
    if not isinstance(data, dict) or type(code) is not int:
        message = f"answer from {endpoint} is not the documented JSON envelope"
        raise _bad_response(message, status, content, endpoint)
    if code != 0:
        info = data.get("ErrorInfo")
        request_id = data.get("RequestId")
        raise error_class_for(code)(
            code,
            redact(info) if isinstance(info, str) else "",
            request_id=request_id if isinstance(request_id, str) else None,
            endpoint=endpoint,
        )
    if data.get("ActionStatus") != "OK":
        message = (
            f"answer from {endpoint} has ErrorCode 0 but ActionStatus {data.get('ActionStatus')!r}"
        )
        raise _bad_response(message, status, content, endpoint)
    return data


class RequestSender:
    """Signs, paces, sends and retries requests for one app; shared by every endpoint."""

    def __init__(
        self,
        *,
        base_url: str,
        sdkappid: int,
        admin: str,
        usersig: UserSigProvider,
        transport: Transport,
        limiter: Limiter | None,
        max_retries: int,
        timeout: float,
        max_in_flight: int,
        on_attempt: Callable[[AttemptRecord], object] | None = None,
    ) -> None:
        self._prefix = base_url.rstrip("/") + "/v4/"
        self._query_head = f"?sdkappid={sdkappid}&identifier={quote(admin, safe='')}&usersig="
        self._usersig = usersig
        self._transport = transport
        self._limiter = limiter
        self._pausable = limiter if isinstance(limiter, PausableLimiter) else None
        self._max_retries = max_retries
        self._timeout = timeout
        self._max_in_flight = max_in_flight
        self._slots: dict[str, anyio.Semaphore] = {}
        self._on_attempt = on_attempt
        self.closed = False

    async def request(self, endpoint: str, body: object, result_type: type[T]) -> T:
        """POST ``body`` to ``endpoint`` and return the answer as ``result_type``."""
        if self.closed:
            raise TencentChatError("this client was closed; make a new TencentChat")
        payload = _ENCODER.encode(converter.unstructure(body)).encode()
        # Most calls succeed at once; the retry machinery (tens of microseconds to set
        # up) is built only for those that fail.
        try:
            data = await self._attempt(endpoint, payload, 1)
        except TencentChatError as error:
            data = await self._retry(endpoint, payload, error)
        try:
            return converter.structure(data, result_type)
        except (cattrs.BaseValidationError, TypeError, ValueError) as err:
            message = f"answer from {endpoint} has fields of the wrong type"
            raise _bad_response(message, 200, json.dumps(data).encode(), endpoint) from err

    async def _retry(
        self, endpoint: str, payload: bytes, first_error: TencentChatError
    ) -> dict[str, Any]:
        """Go on after a failed first attempt, for as long as the retry policy says."""
        renewed = False
        decision = RetryDecision(False)

        def should_retry(state: tenacity.RetryCallState) -> bool:
            nonlocal decision, renewed
            error = state.outcome.exception() if state.outcome else None
            if error is None:
                return False
            decision = retry_decision(
                error,
                state.attempt_number,
                can_renew_usersig=self._usersig.can_renew and not renewed,
            )
            if decision.retry and isinstance(error, APIError) and error.code == USERSIG_EXPIRED:
                # The renewal retry is owed to the client's own signature, not a fault:
                # it does not use up one of the caller's retries.
                renewed = True
                self._usersig.renew()
            return decision.retry

        def stop(state: tenacity.RetryCallState) -> bool:
            return state.attempt_number - int(renewed) > self._max_retries

        def log_retry(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            logger.warning(
                "retrying %s after %s (attempt %d, waiting %.2fs): %s",
                endpoint,
                type(error).__name__,
                state.attempt_number,
                decision.delay,
                redact(str(error)),
            )

        retrying = tenacity.AsyncRetrying(
            retry=should_retry,
            stop=stop,
            wait=lambda _: decision.delay,
            before_sleep=log_retry,
            sleep=anyio.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                if number == 1:
                    raise first_error  # the attempt made in request(), judged like any other
                return await self._attempt(endpoint, payload, number)
        raise AssertionError("unreachable: tenacity returns or reraises")  # pragma: no cover

    async def _attempt(self, endpoint: str, payload: bytes, number: int) -> dict[str, Any]:
        slots = self._slots.get(endpoint)
        if slots is None:
            slots = self._slots[endpoint] = anyio.Semaphore(self._max_in_flight, fast_acquire=True)
        async with slots:
            if self._limiter is not None:
                await self._limiter.acquire(endpoint)
            url = (
                f"{self._prefix}{endpoint}{self._query_head}{self._usersig.current()}"
                f"&random={random.getrandbits(32)}&contenttype=json"
            )
            started = anyio.current_time() if self._on_attempt is not None else 0.0
            try:
                response = await self._transport.post(url, payload, timeout=self._timeout)
                data = parse_envelope(response, endpoint)
            except TencentChatError as err:
                if getattr(err, "endpoint", "") is None:
                    err.endpoint = endpoint  # type: ignore[attr-defined]
                if isinstance(err, RateLimitError) and self._pausable is not None:
                    # Everyone sharing the limiter backs off, not only this caller.
                    await self._pausable.pause(endpoint, RATE_LIMITED_PAUSE)
                if self._on_attempt is not None:
                    self._report(endpoint, number, started, err, getattr(err, "request_id", None))
                raise
        if self._on_attempt is not None:
            request_id = data.get("RequestId")
            self._report(endpoint, number, started, None, request_id)
        return data

    def _report(
        self,
        endpoint: str,
        number: int,
        started: float,
        error: TencentChatError | None,
        request_id: object,
    ) -> None:
        assert self._on_attempt is not None
        record = AttemptRecord(
            endpoint=endpoint,
            attempt=number,
            started=started,
            elapsed=anyio.current_time() - started,
            error=error,
            request_id=request_id if isinstance(request_id, str) else None,
        )
        try:
            self._on_attempt(record)
        except Exception:
            # An observer's bug must not turn a successful call into a failed one.
            logger.exception("on_attempt callback failed for %s", endpoint)
