"""Keeping the secret key and the admin UserSig inside the process.

The signature travels in the query string, so anything that prints a request URL
(httpx's own INFO log, a chained httpx error, a proxy's error page) would leak it; and
an error tracker that records the local variables of every frame would copy any
variable holding either secret. So: secrets are held in :class:`Secret` boxes until the
moment of use, the signed URL is a :class:`SignedURL` whose repr is redacted, and every
live client's exact secrets are listed here (:func:`live_secrets`) for the scrubbers of
other tools (``_sentry``).
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Iterable
from typing import Protocol, overload
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "Secret",
    "SecretSource",
    "SignedURL",
    "box",
    "install_httpx_log_filter",
    "live_secrets",
    "redact",
    "secrets_changed",
    "shows_secret",
    "watch_secrets",
    "without_userinfo",
]

# Also the percent-encoded form, as a page that echoes the URL inside a link shows it.
# Only where a parameter name starts: after a non-word character (``?``, ``&``, a space),
# at the start, or after a percent escape (``%26usersig%3D``, a URL encoded whole); not
# inside a longer name, such as the ``can_renew_usersig=True`` of a repr.
# Or after a JSON escape (``\u0026usersig=``, as Go's encoder writes ``&``).
_USERSIG = re.compile(
    r"(?:(?<!\w)|(?<=%[0-9A-F]{2})|(?<=\\u00[0-9A-F]{2}))(usersig(?:=|%3D))[^&\s\"'<>]*",
    re.IGNORECASE,
)
REDACTED = "REDACTED"  # plain letters, so it survives URL-encoding

# A piece of a secret cut out of its context (a truncated copy, a parser's window of
# raw bytes) is recognised inside a run of the secrets' alphabet as a stretch made of
# pieces of a secret this long; shorter ones are no use to anyone.
_PIECE = 20
_RUN = re.compile(r"[A-Za-z0-9*_\-+/=%.~]{" + str(_PIECE) + ",}")


def shows_secret(text: str) -> bool:
    """Whether :func:`redact` would change ``text``."""
    return redact(text) != text


def redact(text: str, substitute: str = REDACTED) -> str:
    """``text`` without secrets: every ``usersig=`` (or ``usersig%3D``) parameter's value,
    and every live secret (see :func:`live_secrets`) whole, percent-encoded or cut,
    replaced."""
    if "usersig" in text.lower():
        text = _USERSIG.sub(lambda match: match.group(1) + substitute, text)
    secrets = _matcher()
    return secrets.redact(text, substitute) if secrets is not None else text


class _Matcher:
    """The live secrets of one moment, compiled (they change as clients sign anew).

    A secret made of the run alphabet (a UserSig, a hex key) is found through its pieces,
    one set lookup per position whatever the number of secrets; only the others (short,
    or with other characters) need the alternation of exact strings.
    """

    __slots__ = ("_exact", "_pieces", "key")

    def __init__(self, key: tuple[int, int], secrets: list[str]) -> None:
        self.key = key
        # surrogatepass: a key with a lone surrogate (refused by TencentChat, but boxed
        # and so listed while its failed construction's traceback lives) must not break
        # every redaction.
        forms = {
            form
            for secret in secrets
            for form in (secret, quote(secret, safe="", errors="surrogatepass"))
        }
        exact = [form for form in forms if not _RUN.fullmatch(form)]
        # Longest first: alternatives are tried in order.
        self._exact = (
            re.compile("|".join(map(re.escape, sorted(exact, key=len, reverse=True))))
            if exact
            else None
        )
        self._pieces = frozenset(
            form[start : start + _PIECE]
            for form in forms
            for start in range(len(form) - _PIECE + 1)
        )

    def redact(self, text: str, substitute: str) -> str:
        if self._exact is not None:
            text = self._exact.sub(substitute, text)
        if self._pieces:
            text = _RUN.sub(lambda run: self._cut(run.group(), substitute), text)
        return text

    def _cut(self, run: str, substitute: str) -> str:
        """``run`` with every stretch made of pieces of a secret replaced."""
        stretches: list[list[int]] = []
        for start in range(len(run) - _PIECE + 1):
            if run[start : start + _PIECE] in self._pieces:
                if stretches and start <= stretches[-1][1]:
                    stretches[-1][1] = start + _PIECE
                else:
                    stretches.append([start, start + _PIECE])
        if not stretches:
            return run
        parts, done = [], 0
        for start, stop in stretches:
            parts += [run[done:start], substitute]
            done = stop
        return "".join([*parts, run[done:]])


# The matcher of the last state of the registry seen: (generation, sources), matcher.
_LAST: list[tuple[tuple[int, int], _Matcher | None]] = []
_generation = 0  # bumped when a source is watched or its secrets change


def _matcher() -> _Matcher | None:
    # A cheap key, not the secrets themselves: redaction runs on every log record of
    # httpx's and every string of a Sentry event, with any number of clients alive.
    key = (_generation, len(_SOURCES))
    if not _LAST or _LAST[0][0] != key:
        secrets = live_secrets()
        _LAST[:] = [(key, _Matcher(key, secrets) if secrets else None)]
    return _LAST[0][1]


class Secret:
    """A secret string in a box whose repr never shows it.

    Error trackers and ``capture_locals`` tracebacks repr every local variable of every
    frame; a boxed secret shows as ``Secret('********')``. The value comes out only
    through :meth:`reveal`, at the point of use, without being bound to a local. While
    a box lives, its value is one of the :func:`live_secrets` every redaction removes
    (also after a failed construction, whose traceback keeps the box alive).
    """

    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        watch_secrets(self)

    def reveal(self) -> str:
        return self._value

    def secrets(self) -> tuple[str]:
        return (self._value,)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


@overload
def box(value: str | Secret) -> Secret: ...
@overload
def box(value: None) -> None: ...
@overload
def box(value: object) -> object: ...
def box(value: object) -> object:
    """``value`` boxed in a :class:`Secret` if it is a string, else as it is."""
    return Secret(value) if isinstance(value, str) else value


class SignedURL(str):
    """A request URL carrying the UserSig: a plain ``str`` to transports, redacted in reprs.

    Being a ``str`` keeps user transports (``Transport.post(url: str, ...)``) working;
    the repr is what tracebacks with locals, error trackers and debuggers show.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(redact(str.__str__(self)))


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` replaced, as the conventions want ``url.full``."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}:{REDACTED}@{host}"))


_USERINFO = re.compile(r"^([^:/?#]*://)?[^/?#]*@")


def shown_url(url: str) -> str:
    """``url`` for a message: its ``user:password@`` and its query (either may hold a
    secret) replaced, whether or not it parses."""
    cut = re.search(r"[?#]", url)
    base = url if cut is None else url[: cut.start()]
    base = _USERINFO.sub(lambda m: f"{m[1] or ''}{REDACTED}@", base)
    return base if cut is None else f"{base}{cut[0]}{REDACTED}"


class SecretSource(Protocol):
    """Anything that can name the exact secret strings it holds (a UserSigProvider)."""

    def secrets(self) -> Iterable[str]: ...


# Weak: listing a client's secrets must not keep the client alive.
_SOURCES: weakref.WeakSet[SecretSource] = weakref.WeakSet()


def watch_secrets(source: SecretSource) -> None:
    """List ``source.secrets()`` in :func:`live_secrets` for as long as ``source`` lives."""
    _SOURCES.add(source)
    secrets_changed()


def secrets_changed() -> None:
    """Say that a watched source's secrets changed (it signed a new UserSig)."""
    global _generation
    _generation += 1


def live_secrets() -> list[str]:
    """The exact secret strings of every live client: secret keys, current and recent
    UserSigs, and any :class:`Secret` box still referenced."""
    return [secret for source in list(_SOURCES) for secret in source.secrets() if secret]


class RedactingFilter(logging.Filter):
    """Rewrites a record whose message carries a ``usersig=`` parameter."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER = RedactingFilter()
# Where an httpx.AsyncClient logs a request's path: httpx's own INFO line, and with
# http2=True the HPACK encoder's DEBUG lines (``Adding b':path'=...``).
_URL_LOGGERS = ("httpx", "hpack.hpack", "hpack.table")


def install_httpx_log_filter() -> None:
    """Redact the records in which httpx and its HTTP/2 stack log a request's URL.

    Idempotent. A logger's filters see only records logged on that very logger, so the
    filter goes on each logger that writes the URL.
    """
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
