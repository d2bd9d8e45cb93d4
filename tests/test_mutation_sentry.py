"""The Sentry scrubber's registration on the global scope and the edges of its walk:
what the mutation run (``nox -s mutation``) found untested."""

from __future__ import annotations

import gc
import sys
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import sentry_sdk
import sentry_sdk.scope

from tencent_chat_robots import _sentry
from tencent_chat_robots._redact import Secret
from tencent_chat_robots._sentry import install_if_loaded, scrub_event, strip_sentry_tracing

from .conftest import SECRET_KEY


@pytest.fixture
def key() -> Secret:
    """A live secret (the registry of live secrets is weak: held by the test)."""
    gc.collect()  # clients other tests dropped are not live
    return Secret(SECRET_KEY)


@pytest.fixture
def fresh_registration(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """As in a process where the scrubber was never registered: the global scope's own
    processors (what the test sees) and the global ones without it."""
    scope = sentry_sdk.get_global_scope()
    scoped = [p for p in scope._event_processors if p is not scrub_event]
    monkeypatch.setattr(scope, "_event_processors", scoped)
    monkeypatch.setattr(
        sentry_sdk.scope,
        "global_event_processors",
        [p for p in sentry_sdk.scope.global_event_processors if p is not scrub_event],
    )
    monkeypatch.setattr(_sentry, "_installed", False)
    monkeypatch.setattr(_sentry, "_scoped", False)
    return scoped


def test_the_scrubber_is_put_on_sentrys_global_scope_once(fresh_registration: list[Any]) -> None:
    install_if_loaded()
    assert fresh_registration.count(scrub_event) == 1
    # Something registered after it: it is moved last, and not added to the scope again.
    sentry_sdk.scope.global_event_processors.append(lambda event, hint: event)
    install_if_loaded()
    assert sentry_sdk.scope.global_event_processors[-1] is scrub_event
    assert fresh_registration.count(scrub_event) == 1


def test_without_sentry_nothing_is_registered(
    fresh_registration: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "sentry_sdk")
    install_if_loaded()
    assert scrub_event not in fresh_registration
    assert _sentry._installed is False


def test_an_unchanged_part_is_kept_as_it_was_bytes_and_objects_too(key: Secret) -> None:
    class Plain:
        def __repr__(self) -> str:
            return "<Plain>"

    extra = {"raw": b"no secret here", "object": Plain(), "n": 7, "none": None}
    event = {"extra": extra}
    assert scrub_event(event, {})["extra"] is extra


def test_bytes_with_a_secret_are_sent_decoded_and_filtered(key: Secret) -> None:
    event = {"extra": {"raw": f"key={SECRET_KEY}".encode()}}
    assert scrub_event(event, {})["extra"] == {"raw": "key=[Filtered]"}


def test_an_object_with_a_metadata_attribute_is_still_scrubbed_by_its_repr(key: Secret) -> None:
    class HasMetadata:
        metadata: ClassVar[dict[str, list[Any]]] = {"rem": []}
        value = None

        def __repr__(self) -> str:
            return f"<HasMetadata {SECRET_KEY}>"

    event = {"extra": {"thing": HasMetadata()}}
    assert scrub_event(event, {})["extra"] == {"thing": "<HasMetadata [Filtered]>"}


class FakeSession:
    def __init__(self, *configs: Any) -> None:
        self._trace_configs = list(configs)


def _handler(module: str) -> Any:
    def handler(*args: Any) -> None:
        pass

    handler.__module__ = module
    return handler


def test_only_configs_all_of_whose_handlers_are_sentrys_are_taken_off() -> None:
    sentrys = SimpleNamespace(on_request_start=[_handler("sentry_sdk")])
    submodule = SimpleNamespace(on_request_start=[_handler("sentry_sdk.integrations.aiohttp")])
    mixed = SimpleNamespace(on_request_start=[_handler("sentry_sdk"), _handler("otel")])
    lookalike = SimpleNamespace(on_request_start=[_handler("sentry_sdk_extra")])
    unreadable = SimpleNamespace(on_request_start=5)  # not a list: kept, nothing raised
    empty = SimpleNamespace(on_request_start=[])
    session = FakeSession(sentrys, submodule, mixed, lookalike, unreadable, empty)
    strip_sentry_tracing(session)  # type: ignore[arg-type]
    assert session._trace_configs == [mixed, lookalike, unreadable, empty]


async def test_a_request_registers_the_scrubber_once_sentry_is_imported(
    fresh_registration: list[Any],
) -> None:
    """Sentry imported (and initialised) after the client was made: the next request
    puts the scrubber in place."""
    from tencent_chat_robots import TencentChat

    from .conftest import SDKAPPID, ScriptedTransport

    async with TencentChat(SDKAPPID, SECRET_KEY, transport=ScriptedTransport()) as chat:
        # As if Sentry came after the construction: nothing registered yet.
        sentry_sdk.scope.global_event_processors.remove(scrub_event)
        _sentry._installed = False
        await chat.delete_robot("@RBT#1")
    assert sentry_sdk.scope.global_event_processors[-1] is scrub_event
