"""Turning ``TencentChat``'s arguments and environment into checked settings.

Explicit arguments win over environment variables; anything wrong is a
:class:`ValidationError` at construction, never a surprise at the first call.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, Literal, TypeGuard, overload
from urllib.parse import urlsplit

from ._constants import (
    DEFAULT_ADMIN,
    ENV_ADMIN,
    ENV_BASE_URL,
    ENV_REGION,
    ENV_SDKAPPID,
    ENV_SECRET_KEY,
)
from ._exceptions import ValidationError
from ._redact import Secret, box, shown_url
from ._regions import Region

__all__ = [
    "require_number",
    "resolve_admin",
    "resolve_endpoint_root",
    "resolve_sdkappid",
    "resolve_secret",
]


def _is_text(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def _is_boxed_text(value: object) -> TypeGuard[Secret]:
    return isinstance(value, Secret) and _is_text(value.reveal())


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _require_encodable(name: str, value: str) -> str:
    # A lone surrogate (from undecodable bytes) would fail deep in signing or sending,
    # with an error whose text quotes the whole value.
    if not _encodable(value):
        raise ValidationError(f"{name} is not valid Unicode text")
    return value


def _require_encodable_secret(name: str, value: Secret) -> Secret:
    if not _encodable(value.reveal()):
        raise ValidationError(f"{name} is not valid Unicode text")
    return value


def resolve_sdkappid(value: object) -> int:
    """The SDKAppID from ``value`` or ``TENCENT_CHAT_SDKAPPID``: a positive integer."""
    raw = value if value is not None else os.environ.get(ENV_SDKAPPID)
    if raw is None or raw == "":
        raise ValidationError(f"sdkappid is required: pass sdkappid= or set {ENV_SDKAPPID}")
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw)
    # bool is an int; a float would be silently truncated.
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValidationError(f"sdkappid must be an integer, got {raw!r}")
    if raw <= 0:
        raise ValidationError(f"sdkappid must be positive, got {raw}")
    return raw


def resolve_admin(value: object) -> str:
    """The admin account from ``value`` or ``TENCENT_CHAT_ADMIN`` (default ``administrator``)."""
    if value is None:
        return os.environ.get(ENV_ADMIN) or DEFAULT_ADMIN
    if not _is_text(value):
        raise ValidationError(f"admin must be a non-empty string, got {value!r}")
    return _require_encodable("admin", value)


def resolve_secret(secret_key: object, usersig: object) -> tuple[Secret | None, Secret | None]:
    """``(secret_key, usersig)``: exactly one set; the key may come from the environment.

    Both come in and go out boxed (:class:`Secret`; anything not a string as it is), so
    that no frame of a failed construction holds a secret in the clear.
    """
    if usersig is not None:
        if secret_key is not None:
            raise ValidationError("pass secret_key= or usersig=, not both")
        if not _is_boxed_text(usersig):
            raise ValidationError("usersig must be a non-empty string")
        return None, _require_encodable_secret("usersig", usersig)
    if secret_key is None:
        secret_key = box(os.environ.get(ENV_SECRET_KEY) or None)
    if secret_key is None:
        raise ValidationError(
            f"a secret key is required: pass secret_key= (or set {ENV_SECRET_KEY}),"
            " or pass a ready usersig="
        )
    if not _is_boxed_text(secret_key):
        raise ValidationError("secret_key must be a non-empty string")
    return _require_encodable_secret("secret_key", secret_key), None


def _shown(url: object) -> str:
    """``url`` for a message, without what may be a secret in it (see shown_url)."""
    return repr(shown_url(url)) if isinstance(url, str) else repr(url)


def _check_base_url(url: object) -> str:
    if not _is_text(url):
        raise ValidationError(f"base_url must be a non-empty string, got {_shown(url)}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as err:
        raise ValidationError(f"base_url {_shown(url)} is not a valid URL: {err}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"base_url must look like https://host[:port], got {_shown(url)}")
    if parts.query or parts.fragment:
        raise ValidationError(f"base_url must not carry a query or fragment, got {_shown(url)}")
    return url.rstrip("/")


def resolve_endpoint_root(base_url: object, region: object) -> tuple[str, Region | None]:
    """``(base_url, region)``: arguments first, then ``TENCENT_CHAT_BASE_URL``/``_REGION``.

    An explicit ``region`` is never overridden by an environment variable: signed admin
    requests must not be redirected by the environment behind the caller's back.
    """
    if base_url is not None:
        return _check_base_url(base_url), None
    if region is None:
        env_url = os.environ.get(ENV_BASE_URL)
        if env_url:
            return _check_base_url(env_url), None
        region = os.environ.get(ENV_REGION) or Region.CHINA
    if not isinstance(region, (Region, str)):
        raise ValidationError(f"region must be a Region or its name, got {region!r}")
    try:
        parsed = Region.parse(region)
    except ValueError as err:
        raise ValidationError(str(err)) from None
    return parsed.base_url, parsed


@overload
def require_number(
    name: str, value: object, *, minimum: float, maximum: float = ..., integer: Literal[True]
) -> int: ...
@overload
def require_number(
    name: str, value: object, *, minimum: float, maximum: float = ..., integer: Literal[False] = ...
) -> float: ...
def require_number(
    name: str,
    value: object,
    *,
    minimum: float,
    maximum: float = math.inf,
    integer: bool = False,
) -> float:
    """``value`` as a plain ``int`` or ``float`` if it is a finite number (an int if
    ``integer``) in range; else a :class:`ValidationError`."""
    plain = _plain_number(value)
    if (
        plain is None
        or (integer and not isinstance(plain, int))
        # Also refuses nan and inf: an endless timeout or rate is never what was meant.
        or not (minimum <= plain <= maximum and plain < math.inf)
    ):
        kind = "a whole number" if integer else "a finite number"
        upper = f" and <= {maximum:g}" if maximum < math.inf else ""
        raise ValidationError(f"{name} must be {kind} >= {minimum:g}{upper}, got {value!r}")
    return plain


def _plain_number(value: object) -> float | None:
    """``value`` as the built-in ``int`` or ``float`` it is an instance of, else ``None``.

    A subclass (a numpy-like scalar, an enum member) is not kept: its own comparisons and
    arithmetic are not trusted to check it here and to act the same way where it is used.
    ``int.__int__`` and ``float.__float__`` read the value itself, whatever it overrides.
    """
    if isinstance(value, bool):  # a bool is an int, but never a sensible setting here
        return None
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    return None


def number_validator(
    *, minimum: float, maximum: float = math.inf, integer: bool = False, optional: bool = False
) -> Callable[[Any, Any, Any], None]:
    """An attrs validator that checks a field with :func:`require_number`, named after the
    field, and stores the plain number it returns (``None`` passes if ``optional``).

    Not a converter: one raising mid-``__init__`` would leave an object without its later
    fields, whose repr fails in every traceback that records locals. Validators run once
    every field is set.
    """

    def store(instance: Any, field: Any, value: Any) -> None:
        if value is None and optional:
            return
        name = field.name
        plain = (
            require_number(name, value, minimum=minimum, maximum=maximum, integer=True)
            if integer
            else require_number(name, value, minimum=minimum, maximum=maximum)
        )
        object.__setattr__(instance, name, plain)  # frozen: attrs' own way

    return store
