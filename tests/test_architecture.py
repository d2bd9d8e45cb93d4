"""What the redesign promised of the core's shape, checked so that it stays true."""

from __future__ import annotations

import ast
import traceback
from pathlib import Path
from typing import Any

import pytest

from tencent_chat_robots import RequestError, TencentChat

from .conftest import SDKAPPID, SECRET_KEY, ScriptedTransport

SRC = Path(__file__).parents[1] / "src" / "tencent_chat_robots"


def _private_names_defined(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries
    return {name for name in names if name.startswith("_")}


@pytest.mark.parametrize("module", ["_bulk.py", "_base_client.py", "_gate.py", "_lifecycle.py"])
def test_a_core_module_reads_no_private_attribute_of_another_module(module: str) -> None:
    tree = ast.parse((SRC / module).read_text())
    own = _private_names_defined(tree)
    foreign = sorted(
        {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and node.attr not in own
        }
    )
    assert foreign == []


def test_no_context_variable_carries_a_call_s_group() -> None:
    for path in SRC.glob("_*.py"):
        assert "ContextVar" not in path.read_text(), path.name


class _ProbeCountingLimiter:
    """A limiter of the original protocol that counts how often it is looked over."""

    looked_up: list[str]

    def __init__(self) -> None:
        object.__setattr__(self, "looked_up", [])

    def __getattribute__(self, name: str) -> Any:
        if name in ("predicted_wait", "pause", "acquire"):
            object.__getattribute__(self, "looked_up").append(name)
        return object.__getattribute__(self, name)

    async def acquire(self, key: str) -> None:
        return None


async def test_a_users_limiter_is_read_once_at_construction_not_per_call() -> None:
    limiter = _ProbeCountingLimiter()
    async with TencentChat(
        SDKAPPID, SECRET_KEY, base_url="http://h", transport=ScriptedTransport(), limiter=limiter
    ) as chat:
        probes = [name for name in limiter.looked_up if name != "acquire"]
        limiter.looked_up.clear()
        for _ in range(5):
            await chat.delete_robot("@RBT#1")
    assert probes  # read when the client was made
    assert limiter.looked_up == ["acquire"] * 5  # then only called


class _LeakyTransport:
    """A user's own transport whose errors quote the URL it was given."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
        raise self.error(f"could not reach {url}")

    async def aclose(self) -> None:
        return None


async def test_a_users_transport_quoting_the_signed_url_gives_a_scrubbed_request_error() -> None:
    chat = TencentChat(
        SDKAPPID, SECRET_KEY, base_url="http://h", transport=_LeakyTransport(OSError)
    )
    with pytest.raises(RequestError) as caught:
        await chat.get_all_robots()
    error = caught.value
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    cause = error.__cause__
    usersig = chat._sender._usersig.current()
    assert usersig not in text
    assert "usersig=REDACTED" in text  # the URL is quoted, its secret is not
    assert cause is not None
    assert cause.__traceback__ is None
    assert error.endpoint == "openim_robot_http_svc/get_all_robots"
    assert not error.retryable  # a bug, not a transient fault


class _UserBug(Exception):
    """An error of a user's transport that shows no secret."""


class _BuggyTransport:
    async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
        raise _UserBug("my transport is broken")

    async def aclose(self) -> None:
        return None


async def test_a_users_transport_error_keeps_its_type_cut_below_the_request_layer() -> None:
    chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=_BuggyTransport())
    with pytest.raises(_UserBug) as caught:
        await chat.get_all_robots()
    files = [frame.filename for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert files[-1].endswith("_base_client.py")  # the transport's frames (the URL) are gone
    assert not any(name == __file__ for name in files[1:])
