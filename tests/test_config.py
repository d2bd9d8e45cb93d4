"""Settings: arguments, environment, regions, and what is refused at construction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tencent_chat_robots import (
    RateLimiter,
    Region,
    TencentChat,
    ValidationError,
)

MakeChat = Callable[..., TencentChat]


def test_missing_credentials_are_refused_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TENCENT_CHAT_SDKAPPID", "TENCENT_CHAT_SECRET_KEY", "TENCENT_CHAT_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="sdkappid is required"):
        TencentChat(secret_key="k")
    with pytest.raises(ValidationError, match="secret key is required"):
        TencentChat(1400000000)
    with pytest.raises(ValidationError, match="sdkappid must be an integer"):
        TencentChat("abc", "k")
    with pytest.raises(ValidationError, match="not both"):
        TencentChat(1400000000, "k", usersig="sig")


def test_configuration_falls_back_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENCENT_CHAT_BASE_URL", raising=False)
    monkeypatch.setenv("TENCENT_CHAT_SDKAPPID", "1400000001")
    monkeypatch.setenv("TENCENT_CHAT_SECRET_KEY", "from-env")
    monkeypatch.setenv("TENCENT_CHAT_ADMIN", "ops")
    monkeypatch.setenv("TENCENT_CHAT_REGION", "frankfurt")
    chat = TencentChat()
    assert chat.sdkappid == 1400000001
    assert chat.admin == "ops"
    assert chat.region is Region.FRANKFURT
    assert chat.base_url == "https://adminapiger.im.qcloud.com"


def test_unknown_region_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="unknown region 'mars'"):
        TencentChat(1400000000, "k", region="mars")


def test_regions_cover_the_documented_domains() -> None:
    assert {r.value for r in Region} == {
        "console.tim.qq.com",
        "adminapisgp.im.qcloud.com",
        "adminapikr.im.qcloud.com",
        "adminapiger.im.qcloud.com",
        "adminapiusa.im.qcloud.com",
        "adminapiidn.im.qcloud.com",
        "adminapijpn.im.qcloud.com",
        "adminapiind.im.qcloud.com",
    }
    assert Region.parse("Silicon Valley") is Region.SILICON_VALLEY
    assert Region.parse("adminapisgp.im.qcloud.com") is Region.SINGAPORE


def test_default_pacing_is_190_per_endpoint() -> None:
    chat = TencentChat(1400000000, "k")
    assert isinstance(chat.limiter, RateLimiter)
    assert chat.rate_limit == 190
    assert TencentChat(1400000000, "k", rate_limit=None).limiter is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sdkappid": 1.9}, "sdkappid must be an integer"),
        ({"sdkappid": True}, "sdkappid must be an integer"),
        ({"timeout": "5"}, "timeout must be a finite number"),
        ({"timeout": 0}, "timeout must be a finite number >= 0.001"),
        ({"timeout": float("inf")}, "timeout must be a finite number"),
        ({"timeout": float("nan")}, "timeout must be a finite number"),
        ({"rate_limit": "190"}, "rate_limit must be a finite number"),
        ({"rate_limit": 0.5}, "rate_limit must be a finite number >= 1"),
        ({"rate_limit": float("inf")}, "rate_limit must be a finite number"),
        ({"rate_limit": float("nan")}, "rate_limit must be a finite number"),
        ({"rate_limit": -float("inf")}, "rate_limit must be a finite number"),
        ({"rate_limit": 1e19}, "rate_limit must be a finite number >= 1 and <= 1e\\+06"),
        ({"timeout": 1e300}, "timeout must be a finite number >= 0.001 and <= 86400"),
        ({"secret_key": "MY-SECRET-\udc80"}, "^secret_key is not valid Unicode text$"),
        ({"admin": "ops\udc80"}, "^admin is not valid Unicode text$"),
        ({"max_retries": 1.5}, "max_retries must be a whole number"),
        ({"max_in_flight": 0}, "max_in_flight must be a whole number >= 1"),
        ({"admin": 123}, "admin must be a non-empty string"),
        ({"secret_key": b"k"}, "secret_key must be a non-empty string"),
        ({"base_url": "localhost:8000"}, "base_url must look like https://host"),
        ({"base_url": "ftp://example.com"}, "base_url must look like"),
        ({"base_url": "http://[::1"}, "not a valid URL"),
        ({"base_url": "http://h:99999"}, "not a valid URL"),
        ({"base_url": "https://h/?usersig=x"}, "must not carry a query"),
        ({"region": 5}, "region must be a Region"),
    ],
)
def test_bad_settings_are_refused_at_construction(kwargs: dict[str, Any], match: str) -> None:
    settings: dict[str, Any] = {"sdkappid": 1400000000, "secret_key": "k", **kwargs}
    with pytest.raises(ValidationError, match=match):
        TencentChat(**settings)


def test_explicit_region_is_not_overridden_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENCENT_CHAT_BASE_URL", "http://elsewhere.example")
    chat = TencentChat(1400000000, "k", region=Region.SINGAPORE)
    assert chat.base_url == "https://adminapisgp.im.qcloud.com"
    assert TencentChat(1400000000, "k").base_url == "http://elsewhere.example"


def test_in_flight_requests_fit_the_httpx_pool() -> None:
    """With a user's httpx client, no request waits for a connection after its permit."""
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=45))
    chat = TencentChat(1400000000, "k", http_client=client)
    assert chat.max_in_flight == 3  # 45 connections shared by 15 endpoints
    assert TencentChat(1400000000, "k").max_in_flight == 256  # aiohttp: no pool cap


@pytest.mark.parametrize("rate", [float("inf"), float("nan"), 0, "190", 1e19])
def test_a_rate_limiter_refuses_a_rate_it_cannot_keep(rate: Any) -> None:
    with pytest.raises(ValidationError, match="rate must be a finite number"):
        RateLimiter(rate)


@pytest.mark.parametrize("burst", [0, 1.5, float("inf")])
def test_a_rate_limiter_refuses_a_bad_burst(burst: Any) -> None:
    with pytest.raises(ValidationError, match="burst must be a whole number"):
        RateLimiter(10, burst=burst)


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), -1])
async def test_close_refuses_a_grace_that_is_not_a_finite_number(timeout: float) -> None:
    chat = TencentChat(1400000000, "k")
    with pytest.raises(ValidationError, match="timeout must be a finite number"):
        await chat.aclose(timeout=timeout)
    await chat.aclose()


class _LyingFloat(float):
    """A float subclass whose comparisons and conversions say what suits it."""

    def __le__(self, other: object) -> bool:
        return True

    def __ge__(self, other: object) -> bool:
        return True

    def __lt__(self, other: object) -> bool:
        return True

    def __float__(self) -> float:
        return 1.0


class _Count(int):
    def __int__(self) -> int:
        return 1


def test_require_number_returns_the_plain_number_of_a_subclass() -> None:
    from tencent_chat_robots._config import require_number

    timeout = require_number("timeout", _LyingFloat(2.5), minimum=0.001)
    assert (type(timeout), timeout) == (float, 2.5)
    count = require_number("burst", _Count(7), minimum=1, integer=True)
    assert (type(count), count) == (int, 7)
    assert type(require_number("rate", 5, minimum=1)) is int  # a plain int stays one
    # Checked by its value, not by its own comparisons.
    with pytest.raises(ValidationError, match=r"timeout must be a finite number >= 0\.001"):
        require_number("timeout", _LyingFloat(-1.0), minimum=0.001)
    with pytest.raises(ValidationError, match="must be a whole number"):
        require_number("burst", True, minimum=0, integer=True)
    with pytest.raises(ValidationError, match="must be a finite number"):
        require_number("rate", False, minimum=0)


def test_a_client_stores_its_timeout_and_retries_as_plain_numbers() -> None:
    chat = TencentChat(1400000000, "k", timeout=_LyingFloat(4.0), max_retries=_Count(2))
    assert chat.options is not None
    assert type(chat.options.timeout) is float
    assert type(chat.options.max_retries) is int
    assert (chat.options.timeout, chat.options.max_retries) == (4.0, 2)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://bob:Pa55w0rd@127.0.0.1:9/x?token=Tok3n", "http://REDACTED@127.0.0.1:9/x?REDACTED"),
        ("ftp://bob:Pa55w0rd@h", "ftp://REDACTED@h"),
        ("bob:Pa55w0rd@h?token=Tok3n", "REDACTED@h?REDACTED"),
        ("http://bob:Pa55w0rd@[::1", "http://REDACTED@[::1"),  # not even a valid URL
    ],
)
def test_a_refused_base_url_is_shown_without_its_password_or_query(url: str, shown: str) -> None:
    with pytest.raises(ValidationError) as refused:
        TencentChat(1400000000, "k", base_url=url)
    assert "Pa55w0rd" not in str(refused.value)
    assert "Tok3n" not in str(refused.value)
    assert repr(shown) in str(refused.value)
