"""How a transport fault is worded: the endpoint and host named from the URL (never its
query), the fault's own first line, cut at 200 characters, and what a time-out
interrupted. What the mutation run (``nox -s mutation``) found untested."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tencent_chat_robots import (
    APIConnectionError,
    APITimeoutError,
    Endpoint,
    RequestError,
    TencentChat,
)
from tencent_chat_robots._redact import Secret
from tencent_chat_robots._transport import HttpxTransport, _where

from .conftest import SDKAPPID, SECRET_KEY

ADD_ROBOT = "room_engine_http_srv/add_robot"
QUERY = "?sdkappid=1&identifier=a&usersig=SIG&random=1&contenttype=json"


async def _fault(fault: BaseException, url: str = f"http://h/v4/{ADD_ROBOT}{QUERY}") -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        raise fault

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RequestError) as caught:
            await HttpxTransport(client).post(url, b"{}", timeout=10)
    return caught.value


async def test_no_free_connection_is_what_a_pool_time_out_interrupted() -> None:
    error = await _fault(httpx.PoolTimeout("pool full"))
    assert isinstance(error, APITimeoutError)
    assert str(error) == (
        f"{ADD_ROBOT} timed out after 10s (no free connection; PoolTimeout: pool full)"
    )


async def test_a_fault_is_named_by_its_first_line_without_trailing_punctuation() -> None:
    error = await _fault(httpx.ConnectError("  refused by peer.: \nsecond line"))
    assert isinstance(error, APIConnectionError)
    assert str(error) == f"connection to h failed for {ADD_ROBOT}: refused by peer (ConnectError)"


async def test_a_fault_without_text_is_named_by_its_class() -> None:
    error = await _fault(httpx.ConnectError(""))
    assert str(error) == f"connection to h failed for {ADD_ROBOT}: ConnectError"


@pytest.mark.parametrize(("length", "shown"), [(200, "x" * 200), (201, "x" * 200 + "...")])
async def test_a_faults_text_is_cut_after_two_hundred_characters(length: int, shown: str) -> None:
    error = await _fault(httpx.ConnectError("x" * length))
    assert str(error) == f"connection to h failed for {ADD_ROBOT}: {shown} (ConnectError)"


@pytest.mark.parametrize(
    ("url", "where"),
    [
        (f"http://user:pw@h:81/prefix/v4/{ADD_ROBOT}{QUERY}", ("h:81", ADD_ROBOT)),
        ("http://h/v4/a/v4/b", ("h", "b")),  # the path after the last /v4/
        ("http://h/other/path", ("h", "/other/path")),  # no /v4/: the whole path
        ("http://h", ("h", "the request")),
        ("/v4/" + ADD_ROBOT, ("the server", ADD_ROBOT)),
        ("http://[::1/v4/x", ("the server", "the request")),  # no URL at all
    ],
)
def test_an_error_names_the_host_and_endpoint_of_the_url(url: str, where: tuple[str, str]) -> None:
    assert _where(url) == where


class LeakingTransport:
    """A user's transport whose own error shows the secret key."""

    def __init__(self, text: str) -> None:
        self.text = text

    async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
        raise ValueError(self.text)

    async def aclose(self) -> None:
        pass


async def test_a_foreign_error_showing_a_secret_becomes_a_request_error_naming_the_endpoint() -> (
    None
):
    key = Secret(SECRET_KEY)
    async with TencentChat(
        SDKAPPID, SECRET_KEY, transport=LeakingTransport(f"bad key {SECRET_KEY}")
    ) as chat:
        with pytest.raises(RequestError) as caught:
            await chat.delete_robot("@RBT#1")
    assert str(caught.value) == (
        f"the HTTP library failed for {Endpoint.DELETE_ROBOT}: ValueError: bad key REDACTED"
    )
    del key


class _ShowsInStr(Exception):
    def __str__(self) -> str:
        return f"failed with key {SECRET_KEY}"


class _ShowsInRepr(Exception):
    def __repr__(self) -> str:
        return f"<_ShowsInRepr {SECRET_KEY}>"


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _AttributesShowIt(Exception):
    """Its text is plain; of its attributes, one cannot be shown and the next holds a
    secret."""

    def __init__(self) -> None:
        super().__init__("plain")
        self.context = _BadRepr()
        self.url = f"http://h/?key={SECRET_KEY}"


class RaisingTransport:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
        raise self.error

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(
    "error",
    [_ShowsInStr(), _ShowsInRepr(), _AttributesShowIt()],
    ids=["its text", "its repr", "an attribute after one whose repr fails"],
)
async def test_a_foreign_error_showing_a_secret_anywhere_is_replaced(error: Exception) -> None:
    key = Secret(SECRET_KEY)
    async with TencentChat(SDKAPPID, SECRET_KEY, transport=RaisingTransport(error)) as chat:
        with pytest.raises(RequestError) as caught:
            await chat.delete_robot("@RBT#1")
    assert caught.value is not error
    detail = "plain" if isinstance(error, _AttributesShowIt) else "failed with key REDACTED"
    if isinstance(error, _ShowsInRepr):
        detail = "no details"  # its text is empty
    assert str(caught.value) == (
        f"the HTTP library failed for {Endpoint.DELETE_ROBOT}: {type(error).__name__}: {detail}"
    )
    assert SECRET_KEY not in str(caught.value)
    del key
