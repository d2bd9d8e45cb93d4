"""Keeping this client's secrets out of Sentry, with nothing for the user to do.

A plain ``sentry_sdk.init(dsn=...)`` enables Sentry's aiohttp and httpx integrations,
which record every outgoing request (query string included, so the UserSig) as a
breadcrumb and as an ``http.client`` span; error events also carry every frame's local
variables. Two defences:

* :func:`strip_sentry_tracing` takes Sentry's trace config off the SDK's own aiohttp
  session, so its requests never become breadcrumbs or spans at all;
* :func:`scrub_event`, an event processor registered by :func:`install_if_loaded` (among
  the global ones, kept last, and on the global scope, which runs after them all), drops
  the breadcrumbs of this SDK's requests (an httpx client the user passed in) and
  replaces every live secret left anywhere in an error or transaction event.

``sentry_sdk`` is optional: it is imported only once something else has imported it.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from ._redact import redact, shows_secret

if TYPE_CHECKING:
    import aiohttp

__all__ = ["FILTERED", "install_if_loaded", "scrub_event", "strip_sentry_tracing"]

FILTERED = "[Filtered]"  # Sentry's own substitute for scrubbed data

_HTTP_FIELDS = ("url", "http.query")  # where Sentry's HTTP breadcrumbs put the address
_CYCLE = "<cyclic>"  # what Sentry's serializer shows for a reference cycle
_LEAVES = (bool, int, float, complex, date, datetime, time, timedelta)

_installed = False  # registered, or found no API to register with
_scoped = False  # registered on Sentry's global scope as well
_install_lock = threading.Lock()


def install_if_loaded() -> None:
    """Register :func:`scrub_event` with Sentry if ``sentry_sdk`` is imported; keep it last.

    Global event processors run in order, and the scrubber must run after any registered
    later (a ``sentry_sdk.init()`` after the client's first call adds its integrations'
    then, e.g. the one adding ``sys.argv``). Called at construction and before every
    request: the usual path is a few lookups. Sentry is never imported here, so an
    application without it pays nothing.
    """
    if "sentry_sdk" not in sys.modules:
        return
    processors = _global_processors()
    if _installed and (processors is None or processors[-1:] == [scrub_event]):
        return
    # The lock: two threads' first requests must not register it twice. The suppress:
    # if Sentry's internals changed, a request must not fail for it.
    with _install_lock, contextlib.suppress(Exception):
        _install(_global_processors())


def _global_processors() -> list[Any] | None:
    found = getattr(sys.modules.get("sentry_sdk.scope"), "global_event_processors", None)
    return found if isinstance(found, list) else None


def _install(processors: list[Any] | None) -> None:
    global _installed, _scoped
    if not _scoped:
        # On the global scope too: its processors run after every global one, so also
        # after those a late sentry_sdk.init() adds when no request follows it.
        get_global_scope = getattr(sys.modules.get("sentry_sdk"), "get_global_scope", None)
        if callable(get_global_scope):
            get_global_scope().add_event_processor(scrub_event)
            _scoped = True
    if processors is not None and scrub_event in processors:
        if processors[-1] is not scrub_event:  # something was registered after it
            processors.remove(scrub_event)
            processors.append(scrub_event)
    elif not _installed or processors is not None:
        add = _add_global_event_processor()
        if add is not None:
            add(scrub_event)
    # Set even if Sentry's API is not found: then there is nothing to retry per request.
    _installed = True


def _add_global_event_processor() -> Callable[[Any], object] | None:
    # Looked up by name (typed Any) rather than imported: its home has moved between
    # versions, and the SDK must not need Sentry's types.
    for module_name in ("sentry_sdk.scope", "sentry_sdk"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        add = getattr(module, "add_global_event_processor", None)
        if callable(add):
            return add  # type: ignore[no-any-return]
    return None


def scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Sentry event processor: ``event`` without this SDK's secrets.

    Drops the HTTP breadcrumbs of requests carrying a UserSig, then replaces every live
    secret (also a truncated one) and the value of every ``usersig=`` parameter (not of
    a longer name such as ``can_renew_usersig=``) with ``[Filtered]``, in every string,
    key and object repr of the event. Nested structures are copied where they change,
    never edited: breadcrumbs and span data are shared with Sentry's scope and spans.

    Never raises. A top-level part that cannot be scrubbed is dropped from the event:
    Sentry would otherwise send it unscrubbed (it catches a processor's error and goes
    on with the event), and a day-long admin credential weighs more than a report's
    breadcrumbs or extra; the rest of the report still arrives.
    """
    if not isinstance(event, dict):
        return event
    scrubber = _Scrubber()
    for key in list(event):
        try:
            value = event[key]
            if key == "breadcrumbs":
                value = scrubber.without_our_requests(value)
            event[key] = scrubber.value(value)
        except Exception:
            event.pop(key, None)
    return event


class _Scrubber:
    """One walk over an event (``_redact`` knows the live secrets)."""

    __slots__ = ("_on_path",)

    def __init__(self) -> None:
        self._on_path: set[int] = set()  # containers being walked, to stop at cycles

    def text(self, text: str) -> str:
        return redact(text, FILTERED)

    def without_our_requests(self, breadcrumbs: object) -> object:
        """Event's ``{"values": [...]}`` without HTTP breadcrumbs of requests with a secret."""
        if not isinstance(breadcrumbs, dict):
            return breadcrumbs
        values = breadcrumbs.get("values")
        if not isinstance(values, list):
            return breadcrumbs
        kept = [crumb for crumb in values if not self._is_our_request(crumb)]
        if len(kept) == len(values):
            return breadcrumbs
        return {**breadcrumbs, "values": kept}

    def _is_our_request(self, crumb: object) -> bool:
        data = crumb.get("data") if isinstance(crumb, dict) else None
        if not isinstance(data, dict):
            return False
        return any(
            isinstance(data.get(field), str) and shows_secret(data[field]) for field in _HTTP_FIELDS
        )

    def value(self, obj: object) -> object:
        """``obj`` scrubbed: itself if nothing in it changed, else a copy."""
        if isinstance(obj, str):
            cleaned = self.text(obj)
            return obj if cleaned == obj else cleaned
        if obj is None or isinstance(obj, _LEAVES):
            return obj
        if isinstance(obj, (bytes, bytearray)):  # Sentry sends these decoded
            decoded = bytes(obj).decode("utf-8", "replace")
            cleaned = self.text(decoded)
            return obj if cleaned == decoded else cleaned
        if isinstance(obj, (Mapping, Sequence, Set)):
            if id(obj) in self._on_path:
                # The copy made around it would still lead back to this unscrubbed original.
                return _CYCLE
            self._on_path.add(id(obj))
            try:
                return self._container(obj)
            finally:
                self._on_path.discard(id(obj))
        return self._other(obj)

    def _container(self, obj: Mapping[Any, Any] | Iterable[Any]) -> object:
        changed = False
        if isinstance(obj, Mapping):
            pairs = []
            for key, item in list(obj.items()):
                new_key, new_item = self.value(key), self.value(item)
                changed = changed or new_key is not key or new_item is not item
                pairs.append((new_key, new_item))
            # Sentry serializes any mapping as a dict anyway.
            return dict(pairs) if changed else obj
        items = []
        for item in list(obj):
            new_item = self.value(item)
            changed = changed or new_item is not item
            items.append(new_item)
        if not changed:
            return obj
        return tuple(items) if isinstance(obj, tuple) else items

    def _other(self, obj: object) -> object:
        # Sentry's own marker for a trimmed value (duck-typed: its home moved).
        if type(obj).__name__ == "AnnotatedValue" and hasattr(obj, "metadata"):
            inner = getattr(obj, "value", None)
            cleaned_inner = self.value(inner)
            if cleaned_inner is inner:
                return obj
            return type(obj)(cleaned_inner, obj.metadata)  # type: ignore[call-arg]
        # Sentry sends any other object as its repr (a yarl.URL or httpx.Request shows
        # the query string), and calls that repr itself later, so this adds no new risk.
        try:
            text = repr(obj)
        except Exception:  # Sentry shows it as "<broken repr>"
            return obj
        cleaned = self.text(text)
        return obj if cleaned == text else cleaned


def strip_sentry_tracing(session: aiohttp.ClientSession) -> None:
    """Take Sentry's trace config off ``session``: its requests become no span or breadcrumb.

    Sentry's aiohttp integration patches ``ClientSession.__init__`` to append a
    ``TraceConfig`` whose handlers record the whole URL. Other trace configs (such as
    OpenTelemetry's) stay. Never raises.
    """
    # Private, but it is the list aiohttp reads at the start of every request.
    configs = getattr(session, "_trace_configs", None)
    if not isinstance(configs, (list, tuple)):
        return
    kept = [config for config in configs if not _is_sentrys(config)]
    if len(kept) == len(configs):
        return
    try:
        if isinstance(configs, list):
            # In place: with Sentry's patch the list is one it built for this session.
            configs[:] = kept
        else:
            session._trace_configs = tuple(kept)  # type: ignore[assignment]
    except Exception:  # a future aiohttp that forbids it: nothing more to do here
        pass


def _is_sentrys(config: object) -> bool:
    """Whether every ``on_request_start`` handler of ``config`` is Sentry's own."""
    try:
        handlers = list(getattr(config, "on_request_start", None) or ())
        return bool(handlers) and all(_from_sentry(handler) for handler in handlers)
    except Exception:
        return False


def _from_sentry(handler: object) -> bool:
    module = getattr(handler, "__module__", None)
    return isinstance(module, str) and (module == "sentry_sdk" or module.startswith("sentry_sdk."))
