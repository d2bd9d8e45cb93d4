"""The admin UserSig: generated from the secret key, cached, renewed before it expires."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator

from ._constants import USERSIG_LIFETIME
from ._redact import Secret, secrets_changed, watch_secrets
from ._usersig import generate_usersig

__all__ = ["UserSigProvider"]

_RECENT_KEPT = 4


class UserSigProvider:
    """Hands out the admin UserSig for each request.

    With a secret key, a signature is generated once and reused until half its lifetime
    has passed (so a request never carries one about to expire); ``renew`` forces a new
    one after the server answered 70001. With a fixed ``usersig`` there is nothing to renew.

    Secrets come in boxed (:class:`Secret`), so no frame of its holds one in the clear;
    :meth:`secrets` lists them for the scrubbers of error trackers.
    """

    __slots__ = (
        "__weakref__",
        "_admin",
        "_clock",
        "_current",
        "_lifetime",
        "_recent",
        "_renew_at",
        "_sdkappid",
        "_secret_key",
    )

    def __init__(
        self,
        *,
        sdkappid: int,
        admin: str,
        secret_key: Secret | None = None,
        usersig: Secret | None = None,
        lifetime: int = USERSIG_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (secret_key is None) == (usersig is None):
            raise ValueError("give exactly one of secret_key and usersig")
        self._sdkappid = sdkappid
        self._admin = admin
        self._secret_key = secret_key
        self._lifetime = lifetime
        self._clock = clock
        self._current = usersig.reveal() if usersig is not None else ""
        self._renew_at = float("inf") if usersig is not None else float("-inf")
        # Signatures signed before the current one are still valid for a day, and may
        # sit in an error tracker's breadcrumbs: keep a few to scrub.
        self._recent: deque[str] = deque(maxlen=_RECENT_KEPT)
        watch_secrets(self)

    def __repr__(self) -> str:
        kind = "secret_key" if self._secret_key is not None else "fixed usersig"
        return f"UserSigProvider(admin={self._admin!r}, from={kind})"

    def secrets(self) -> Iterator[str]:
        """The exact secret strings this provider holds or handed out lately."""
        if self._secret_key is not None:
            yield self._secret_key.reveal()
        if self._current:
            yield self._current
        yield from self._recent

    @property
    def can_renew(self) -> bool:
        """Whether a fresh signature can be made (only from a secret key)."""
        return self._secret_key is not None

    def current(self) -> str:
        """The signature to send now."""
        now = self._clock()
        if now >= self._renew_at:
            self._sign(now)
        return self._current

    def renew(self) -> None:
        """Sign anew (after the server said the signature expired)."""
        if self._secret_key is not None:
            self._sign(self._clock())

    def _sign(self, now: float) -> None:
        assert self._secret_key is not None
        if self._current:
            self._recent.append(self._current)
        self._current = generate_usersig(
            self._sdkappid, self._secret_key, self._admin, self._lifetime, now=int(now)
        )
        self._renew_at = now + self._lifetime / 2
        secrets_changed()
