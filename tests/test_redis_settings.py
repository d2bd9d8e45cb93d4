"""RedisLimiterSettings: checked once (and again by attrs.evolve), plain and read-only."""

from __future__ import annotations

import enum

import attrs
import pytest

from tencent_chat_robots import Endpoint, ValidationError
from tencent_chat_robots._endpoints import BY_PATH
from tencent_chat_robots._redis_settings import RedisLimiterSettings


def test_defaults_are_the_documented_ones() -> None:
    settings = RedisLimiterSettings(rate=190)
    assert attrs.asdict(settings, recurse=False) == {
        "rate": 190,
        "rates": {},
        "sdkappid": None,
        "prefix": "tencent-chat-robots",
        "burst": 2,
        "timeout": 0.5,
        "cooldown": 1.0,
        "retry_budget": 1.0,
        "fallback": "error",
        "fleet_size": None,
    }


def test_the_first_bad_argument_is_the_one_named() -> None:
    with pytest.raises(ValidationError, match=r"^rate "):
        RedisLimiterSettings(rate=0, burst=0, timeout=0)
    with pytest.raises(ValidationError, match=r"^burst "):
        RedisLimiterSettings(rate=10, burst=0, timeout=0)


def test_evolve_checks_again() -> None:
    settings = RedisLimiterSettings(rate=10)
    assert attrs.evolve(settings, sdkappid=7).sdkappid == 7
    with pytest.raises(ValidationError, match=r"^sdkappid "):
        attrs.evolve(settings, sdkappid=0)
    with pytest.raises(ValidationError, match="fleet_size"):
        attrs.evolve(settings, fallback="local")


class Rate(float):
    """A number whose own arithmetic is not to be trusted (a numpy-like scalar)."""


class Count(enum.IntEnum):
    TWO = 2


def test_numbers_are_kept_as_the_plain_numbers_they_are() -> None:
    settings = RedisLimiterSettings(rate=Rate(12.5), burst=Count.TWO, timeout=Rate(0.25))
    assert (type(settings.rate), type(settings.burst), type(settings.timeout)) == (
        float,
        int,
        float,
    )
    assert (settings.rate, settings.burst, settings.timeout) == (12.5, 2, 0.25)


def test_settings_and_their_rates_are_read_only() -> None:
    settings = RedisLimiterSettings(rate=10, rates={"add_robot_to_room": 5})
    assert settings.rates == {Endpoint.ROOM_ADD_ROBOT: 5}  # by path
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        settings.rate = 20  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.rates["svc/mine"] = 1  # type: ignore[index]


def test_each_key_has_its_pace() -> None:
    settings = RedisLimiterSettings(rate=190, rates={"add_robot_to_room": 50, "svc/mine": 7})
    assert settings.rate_for(Endpoint.LIVE_ROOM_ADD_ROBOT) == 95
    assert settings.rate_for(Endpoint.GET_ALL_ROBOTS) == 190
    assert settings.rate_for("svc/other") == 190
    paces = settings.named_paces()
    assert set(paces) == {*BY_PATH, "svc/mine"}
    assert paces[Endpoint.ROOM_ADD_ROBOT] == 50


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"rate": 10, "fleet_size": 20}, r"got 10 / 20"),
        ({"rate": 10, "fleet_size": 8}, r"got 5.0 \(the pace of live_engine_http_srv/\w+\) / 8"),
        (
            {"rate": 1000, "fleet_size": 500},
            r"got 200 \(the pace of openim_robot_http_svc/\w+\) / 500",
        ),
        ({"rate": 100, "fleet_size": 2, "rates": {"svc/mine": 1.5}}, r"of svc/mine\) / 2"),
    ],
)
def test_a_local_fallback_must_leave_every_key_a_call_per_second(
    options: dict[str, object], named: str
) -> None:
    with pytest.raises(ValidationError, match=rf"^rate / fleet_size must be .*{named}$"):
        RedisLimiterSettings(fallback="local", **options)  # type: ignore[arg-type]
    # 8 / 4 leaves the live-room APIs (4/s) 1 call per second in each process.
    assert RedisLimiterSettings(rate=8, fallback="local", fleet_size=4).fleet_size == 4
