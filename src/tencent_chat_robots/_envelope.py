"""The answer's envelope: the JSON object of a success, or the typed error of anything else.

Bodies may echo the signed URL (a proxy's error page does): they are read in frames
that return, so that no frame of a traceback holds them in a local.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import cattrs

from ._exceptions import BadResponseError, TencentChatError, error_class_for
from ._models import ActionResult, converter
from ._redact import redact
from ._transport import RawResponse

__all__ = ["ENCODER", "parse_envelope", "structure"]

T = TypeVar("T")

# One encoder for every call: json.dumps with options builds a new one each time.
ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

_EXCERPT_CHARS = 200
_INFO_CHARS = 2000  # of a vendor ErrorInfo kept on the error (the documented ones are short)


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
    outcome = _read_envelope(response, endpoint)
    if isinstance(outcome, TencentChatError):
        raise outcome
    return outcome


def _read_envelope(response: RawResponse, endpoint: str) -> dict[str, Any] | TencentChatError:
    status, content = response.status_code, response.content
    if status != 200:
        return _bad_response(f"HTTP {status} from {endpoint}", status, content, endpoint)
    try:
        # Decoded first (a BOM allowed): json.loads of bytes sniffs for UTF-16 and -32.
        data = json.loads(content.removeprefix(b"\xef\xbb\xbf").decode())
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        data = None
    code = data.get("ErrorCode") if isinstance(data, dict) else None
    # bool is an int subclass; a JSON true is not an error code.
    if not isinstance(data, dict) or type(code) is not int:
        message = f"answer from {endpoint} is not the documented JSON envelope"
        return _bad_response(message, status, content, endpoint)
    if code != 0:
        info = data.get("ErrorInfo")
        request_id = data.get("RequestId")
        return error_class_for(code)(
            code,
            # Capped: a broken upstream's megabytes would be scanned for secrets.
            redact(info[:_INFO_CHARS]) if isinstance(info, str) else "",
            request_id=request_id if isinstance(request_id, str) else None,
            endpoint=endpoint,
        )
    if data.get("ActionStatus") != "OK":
        message = (
            f"answer from {endpoint} has ErrorCode 0 but ActionStatus {data.get('ActionStatus')!r}"
        )
        return _bad_response(message, status, content, endpoint)
    return data


def structure(
    data: dict[str, Any],
    result_type: type[T],
    endpoint: str,
    sent_random: int | None,
    *,
    settled: bool = False,
) -> T | BadResponseError:
    """``data`` as ``result_type``, or the error saying its fields have the wrong type.

    An :class:`ActionResult` also carries the exchange's ``sent_random`` and whether a
    retry ``settled`` the call.
    """
    if result_type is ActionResult:
        request_id = data.get("RequestId")
        if request_id is None or type(request_id) is str:  # most answers: no converter
            return ActionResult(  # type: ignore[return-value]  # T is ActionResult here
                request_id, settled_on_retry=settled, random=sent_random
            )
    try:
        return converter.structure(data, result_type)
    except (cattrs.BaseValidationError, TypeError, ValueError) as err:
        failure = err
    message = f"answer from {endpoint} has fields of the wrong type"
    bad = _bad_response(message, 200, json.dumps(data).encode(), endpoint)
    bad.random = sent_random
    request_id = data.get("RequestId")
    bad.request_id = request_id if isinstance(request_id, str) else None
    bad.__cause__ = _without_frames(failure)  # cattrs' frames hold the answer
    return bad


def _without_frames(err: BaseException) -> BaseException:
    """``err`` and the errors it groups (cattrs groups one per field), without frames."""
    err.__traceback__ = None
    for inner in getattr(err, "exceptions", ()):
        if isinstance(inner, BaseException):
            _without_frames(inner)
    return err
