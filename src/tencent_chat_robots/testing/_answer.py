"""An endpoint's verdict, shared by the fake's rule modules."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["OK", "Answer"]


class Answer(NamedTuple):
    """An endpoint's verdict: ``code`` 0 for success, with any extra response fields."""

    code: int
    info: str = ""
    fields: dict[str, Any] | None = None


OK = Answer(0)
