"""The callbacks package exports exactly its documented names."""

from __future__ import annotations

import pickle

import tencent_chat_robots.callbacks as callbacks

from ._helpers import c2c

DOCUMENTED = {
    "Answer",
    "C2CMessage",
    "DedupStore",
    "Event",
    "GroupMention",
    "Load",
    "MemoryDedupStore",
    "RedisDedupStore",
    "RobotCallbacks",
    "SignFilter",
    "SignalMessage",
    "UnknownEvent",
}


def test_the_package_exports_exactly_the_documented_names() -> None:
    assert set(callbacks.__all__) == DOCUMENTED
    assert len(callbacks.__all__) == len(DOCUMENTED)


def test_public_classes_present_themselves_as_the_packages() -> None:
    for name in DOCUMENTED - {"Answer", "Event", "DedupStore"}:
        assert getattr(callbacks, name).__module__ == "tencent_chat_robots.callbacks", name


def test_an_event_pickles_under_its_public_name() -> None:
    event = callbacks.UnknownEvent("X.Y", c2c())
    assert pickle.loads(pickle.dumps(event)) == event


def test_the_docstring_shows_add_route_at_the_exact_path_not_a_mount() -> None:
    doc = callbacks.__doc__ or ""
    assert 'app.add_route("/tencent/callback", bot, methods=["POST"])' in doc
    assert "app.mount(" not in doc.replace("``app.mount(...)``", "")
    assert "307" in doc
