"""A :class:`RedisRateLimiter`'s settings, checked once, and the pace of each key under them."""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, Generic, Literal, Protocol, TypeVar, overload

import attrs

from ._config import number_validator
from ._constants import MAX_RATE_LIMIT
from ._endpoints import BY_PATH, pace_for, resolve_rates
from ._exceptions import ValidationError

__all__ = ["DEFAULT_PREFIX", "Fallback", "RedisLimiterSettings", "Setting"]

DEFAULT_PREFIX = "tencent-chat-robots"
Fallback = Literal["error", "local"]
T = TypeVar("T")


def _store_rates(settings: Any, _: Any, value: Any) -> None:
    # Read-only, as the rest of the settings: a limiter caches each key's pace.
    object.__setattr__(settings, "rates", types.MappingProxyType(resolve_rates(value)))


def _check_fallback(_: Any, __: Any, value: Any) -> None:
    if value not in ("error", "local"):
        raise ValidationError(f"fallback must be 'error' or 'local', got {value!r}")


@attrs.frozen(kw_only=True)
class RedisLimiterSettings:
    """What a :class:`RedisRateLimiter` is made with (its arguments, as documented there).

    Checked at construction (and again by ``attrs.evolve``): a number out of range or not
    finite is a :class:`ValidationError` naming it. Fields are checked in this order.
    """

    rate: float = attrs.field(validator=number_validator(minimum=1, maximum=MAX_RATE_LIMIT))
    # Keyed by path (method names resolved), each rate checked; read-only.
    rates: Mapping[str, float] = attrs.field(factory=dict, validator=_store_rates)
    sdkappid: int | None = attrs.field(
        default=None, validator=number_validator(minimum=1, integer=True, optional=True)
    )
    prefix: str = DEFAULT_PREFIX
    burst: int = attrs.field(default=2, validator=number_validator(minimum=1, integer=True))
    # As TencentChat's timeout: under a millisecond no Redis could answer.
    timeout: float = attrs.field(default=0.5, validator=number_validator(minimum=0.001))
    cooldown: float = attrs.field(default=1.0, validator=number_validator(minimum=0))
    retry_budget: float = attrs.field(default=1.0, validator=number_validator(minimum=0))
    fallback: Fallback = attrs.field(default="error", validator=_check_fallback)
    fleet_size: int | None = attrs.field(
        default=None, validator=number_validator(minimum=1, integer=True, optional=True)
    )

    def __attrs_post_init__(self) -> None:
        if self.fallback == "local":
            self._check_local_shares()

    def rate_for(self, key: str) -> float:
        """The starts per sliding second ``key`` is allowed (see ``_endpoints.pace_for``)."""
        return pace_for(key, self.rate, self.rates)

    def named_paces(self) -> dict[str, float]:
        """The pace of every key known by name: the table's APIs and those in ``rates``."""
        return {key: self.rate_for(key) for key in (*BY_PATH, *self.rates)}

    def _check_local_shares(self) -> None:
        # No silent default: assuming a fleet of one would multiply the limit.
        if self.fleet_size is None:
            raise ValidationError("fallback='local' needs fleet_size, the number of processes")
        paces = {"rate": self.rate, **self.named_paces()}
        for name, pace in paces.items():
            if pace / self.fleet_size < 1:  # the in-process limiter's least rate
                of = "" if name == "rate" else f" (the pace of {name})"
                raise ValidationError(
                    "rate / fleet_size must be at least 1 call per second for "
                    f"fallback='local' (each process's share), got {pace!r}{of} / "
                    f"{self.fleet_size!r}"
                )


class _Configured(Protocol):
    @property
    def settings(self) -> RedisLimiterSettings: ...


class Setting(Generic[T]):
    """A read-only attribute giving the same-named field of its owner's ``settings``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> Setting[T]: ...
    @overload
    def __get__(self, instance: _Configured, owner: type) -> T: ...
    def __get__(self, instance: _Configured | None, owner: type) -> T | Setting[T]:
        if instance is None:
            return self
        value: T = getattr(instance.settings, self.name)
        return value

    def __set__(self, instance: object, value: object) -> None:
        raise AttributeError(f"{self.name} is read-only: it is one of the limiter's settings")
