"""A callback's body and command, read defensively: the body may come from anyone.

Strict JSON only (no ``NaN``), UTF-8 only, an object at the top, at most ``MAX_DEPTH``
levels (a robot event has four), and no lone surrogate in any string (JSON lets
``"\\ud800"`` through; no UTF-8 text holds it, so no later ``encode`` may meet it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._events import BadEvent

__all__ = ["MAX_DEPTH", "command_of", "load_body"]

MAX_DEPTH = 32


def _no_constant(name: str) -> Any:
    raise BadEvent(f"{name} is not JSON", "body")


def load_body(body: bytes) -> dict[str, Any]:
    """``body`` as a JSON object; :class:`BadEvent` (reason ``body``) if it is not one."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:  # the parser's own stack: thousands of '[' in a row
        raise BadEvent("the body is nested too deep", "body") from None
    except UnicodeDecodeError:
        raise BadEvent("the body is not UTF-8", "body") from None
    except ValueError:  # also a number of more digits than int() takes
        raise BadEvent("the body is not JSON", "body") from None
    if not isinstance(value, dict):
        raise BadEvent("the body is not a JSON object", "body")
    _check_tree(value)
    return value


def _check_tree(root: dict[str, Any]) -> None:
    """Refuse a tree deeper than ``MAX_DEPTH`` or holding a lone surrogate (no recursion:
    the depth is what is checked)."""
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadEvent("the body is nested too deep", "body")
        if isinstance(node, dict):
            for key, value in node.items():
                _check_text(key)
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            _check_text(node)


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode()
    except UnicodeEncodeError:
        raise BadEvent("the body holds a lone surrogate", "body") from None


def command_of(query: Mapping[str, str], body: Mapping[str, Any]) -> str:
    """The callback's command: the query's and the body's must agree if both are given."""
    in_query, in_body = query.get("CallbackCommand"), body.get("CallbackCommand")
    if in_body is not None and not isinstance(in_body, str):
        raise BadEvent("CallbackCommand is not a string", "command")
    if in_query is not None and not isinstance(in_query, str):
        raise BadEvent("CallbackCommand is not a string", "command")
    if in_query and in_body and in_query != in_body:
        raise BadEvent("the query's CallbackCommand is not the body's", "command")
    command = in_body or in_query
    if not command:
        raise BadEvent("CallbackCommand is missing", "command")
    return command
