"""What :meth:`RobotCallbacks.feed` sends: a body and the query Tencent Chat would
send with it, signed."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .._exceptions import ValidationError
from .._redact import Secret
from ._verify import expected_sign

__all__ = ["signed_request"]


def signed_request(
    sdkappid: int,
    token: Secret | None,
    clock: Callable[[], float],
    event_body: Mapping[str, Any] | bytes,
    query: Mapping[str, str] | None,
) -> tuple[dict[str, str], bytes]:
    """The query and body of ``event_body`` as Tencent sends it (see ``feed``)."""
    if isinstance(event_body, (bytes, bytearray)):
        body = bytes(event_body)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    elif isinstance(event_body, Mapping):
        parsed = dict(event_body)
        try:
            body = json.dumps(parsed).encode()
        except (TypeError, ValueError) as error:
            raise ValidationError(f"event_body is not JSON: {error}") from None
    else:
        raise ValidationError(f"event_body must be a mapping or bytes, got {event_body!r}")
    full = {"SdkAppid": str(sdkappid), "contenttype": "json"}
    command = parsed.get("CallbackCommand") if isinstance(parsed, dict) else None
    if isinstance(command, str):
        full["CallbackCommand"] = command
    given = dict(query or {})
    if token is not None and "Sign" not in given:
        request_time = given.get("RequestTime") or str(int(clock()))
        full["RequestTime"] = request_time
        full["Sign"] = expected_sign(token.reveal(), request_time)
    full.update(given)
    return full, body
