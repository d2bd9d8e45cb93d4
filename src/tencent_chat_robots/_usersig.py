"""UserSig v2: the HMAC-SHA256 signature Tencent Chat accepts in the ``usersig`` parameter.

Byte-for-byte the algorithm of the vendor's ``tls-sig-api-v2`` package, plus the
verification a server performs (which that package lacks), for the fake server and tests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import zlib
from typing import Any

from ._exceptions import AuthenticationError
from ._redact import Secret, box

__all__ = ["generate_usersig", "verify_usersig"]

_URL_ENCODE = str.maketrans({"+": "*", "/": "-", "=": "_"})
_URL_DECODE = str.maketrans({"*": "+", "-": "/", "_": "="})


def _key_bytes(secret_key: Secret) -> bytes:
    try:
        return secret_key.reveal().encode()
    except UnicodeEncodeError:
        pass
    # Raised outside the except block: the UnicodeEncodeError quotes the whole key.
    raise ValueError("secret_key is not valid Unicode text")


def _hmac(
    secret_key: Secret,
    identifier: str,
    sdkappid: int,
    signed_at: int,
    expire: int,
    userbuf: str | None,
) -> str:
    content = (
        f"TLS.identifier:{identifier}\n"
        f"TLS.sdkappid:{sdkappid}\n"
        f"TLS.time:{signed_at}\n"
        f"TLS.expire:{expire}\n"
    )
    if userbuf is not None:
        content += f"TLS.userbuf:{userbuf}\n"
    digest = hmac.new(_key_bytes(secret_key), content.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def generate_usersig(
    sdkappid: int,
    secret_key: str | Secret,
    identifier: str,
    expire: int = 86400,
    *,
    now: int | None = None,
) -> str:
    """Sign ``identifier`` for ``expire`` seconds from ``now`` (default: the current time)."""
    secret_key = box(secret_key)  # before anything can raise with it in this frame
    if expire <= 0:
        raise ValueError("expire must be a positive number of seconds")
    signed_at = int(time.time()) if now is None else int(now)
    # Key order and json.dumps defaults match tls-sig-api-v2 so signatures are identical.
    doc = {
        "TLS.ver": "2.0",
        "TLS.identifier": str(identifier),
        "TLS.sdkappid": int(sdkappid),
        "TLS.expire": int(expire),
        "TLS.time": signed_at,
        "TLS.sig": _hmac(secret_key, str(identifier), int(sdkappid), signed_at, int(expire), None),
    }
    compressed = zlib.compress(json.dumps(doc).encode())
    return base64.b64encode(compressed).decode().translate(_URL_ENCODE)


def _decode(usersig: str) -> dict[str, Any]:
    raw = base64.b64decode(usersig.translate(_URL_DECODE), validate=True)
    doc = json.loads(zlib.decompress(raw))
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


def verify_usersig(
    usersig: str,
    *,
    sdkappid: int,
    secret_key: str | Secret,
    identifier: str,
    now: int | None = None,
) -> None:
    """Check a UserSig as the server does; raise :class:`AuthenticationError` if it fails.

    Codes follow the server's: 70003 unparsable, 70014 SDKAppID mismatch,
    70013 identifier mismatch, 70009 HMAC mismatch, 70001 expired.
    """
    secret_key = box(secret_key)
    try:
        doc = _decode(usersig)
        signed_at = doc["TLS.time"]
        expire = doc["TLS.expire"]
        sig = doc["TLS.sig"]
        sig_appid = doc["TLS.sdkappid"]
        sig_identifier = doc["TLS.identifier"]
        userbuf = doc.get("TLS.userbuf")
        if not (
            isinstance(signed_at, int)
            and isinstance(expire, int)
            and isinstance(sig, str)
            and isinstance(sig_identifier, str)
            and isinstance(userbuf, (str, type(None)))
        ):
            raise ValueError("field of the wrong type")
        sig_appid = int(sig_appid)
    except (ValueError, TypeError, KeyError, RecursionError, binascii.Error, zlib.error) as err:
        raise AuthenticationError(70003, "usersig is invalid: cannot be parsed") from err
    if sig_appid != int(sdkappid):
        raise AuthenticationError(70014, "usersig was signed for another SDKAppID")
    if sig_identifier != identifier:
        raise AuthenticationError(70013, "usersig was signed for another identifier")
    expected = _hmac(secret_key, sig_identifier, sig_appid, signed_at, expire, userbuf)
    if not hmac.compare_digest(expected, sig):
        raise AuthenticationError(70009, "usersig signature verification failed")
    current = int(time.time()) if now is None else int(now)
    if current >= signed_at + expire:
        raise AuthenticationError(70001, "usersig has expired")
