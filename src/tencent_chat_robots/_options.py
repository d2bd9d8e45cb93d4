"""Per-call settings: what ``TencentChat(...)`` sets as defaults and ``with_options`` overrides."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ._config import number_validator
from ._constants import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, MAX_RETRIES_LIMIT, MAX_TIMEOUT
from ._exceptions import ValidationError

__all__ = ["PRIORITIES", "CallOptions", "Priority", "priority_rank"]

Priority = Literal["interactive", "bulk"]
"""A call's class: a waiting ``"interactive"`` call goes before any ``"bulk"`` one."""
# Highest first: a waiting call of a class is served before any of the classes after it.
PRIORITIES: tuple[Priority, ...] = ("interactive", "bulk")
_RANKS: dict[object, int] = {name: rank for rank, name in enumerate(PRIORITIES)}


def priority_rank(priority: object) -> int:
    """0 for ``"interactive"``, 1 for ``"bulk"``; a :class:`ValidationError` for anything else."""
    # A str subclass (an enum's member, say) counts by its text: its own __eq__ and
    # __hash__ are not trusted, nor able to rank it one way here and another elsewhere.
    rank = _RANKS.get(str.__str__(priority)) if isinstance(priority, str) else None
    if rank is None:
        raise ValidationError(f"priority must be 'interactive' or 'bulk', got {priority!r}")
    return rank


def _plain_priority(value: Any) -> Any:
    """The class's own name for ``value`` (a str subclass becomes the plain text).

    Never raises (the validator refuses what it leaves as it is): a converter raising
    mid-``__init__`` would leave an object whose repr fails in a traceback's locals.
    """
    rank = _RANKS.get(str.__str__(value)) if isinstance(value, str) else None
    return value if rank is None else PRIORITIES[rank]


def _check_priority(_: object, __: object, value: Any) -> None:
    priority_rank(value)


@attrs.frozen(slots=True)
class CallOptions:
    """How a client's calls are made; a ``with_options`` view is the same client with others.

    ``priority`` is the class a call waits in for its endpoint's in-flight slot and rate
    permit; ``max_wait`` the most (seconds) one attempt may wait for both (``None``: no
    limit); ``timeout`` the most one attempt may take on the wire; ``max_retries`` how
    many times a transient failure is tried again (at most ``MAX_RETRIES_LIMIT``, 100);
    ``deadline`` the most (seconds) the whole call may take, waits, attempts and backoff
    included (``None``: no limit).
    """

    priority: Priority = attrs.field(
        default="interactive", converter=_plain_priority, validator=_check_priority
    )
    max_wait: float | None = attrs.field(
        default=None, validator=number_validator(minimum=0, maximum=MAX_TIMEOUT, optional=True)
    )
    timeout: float = attrs.field(
        default=DEFAULT_TIMEOUT, validator=number_validator(minimum=0.001, maximum=MAX_TIMEOUT)
    )
    max_retries: int = attrs.field(
        default=DEFAULT_MAX_RETRIES,
        validator=number_validator(minimum=0, maximum=MAX_RETRIES_LIMIT, integer=True),
    )
    deadline: float | None = attrs.field(
        default=None, validator=number_validator(minimum=0.001, maximum=MAX_TIMEOUT, optional=True)
    )
    rank: int = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "rank", priority_rank(self.priority))
