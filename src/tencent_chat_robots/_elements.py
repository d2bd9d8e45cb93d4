"""Message elements: what a ``MsgBody`` holds, going out (replies) and coming in (callbacks).

A message is a list of elements, each ``{"MsgType": ..., "MsgContent": {...}}``
(robot-conversation.md, 1.1 and 2.1). The SDK types the two a robot mostly speaks in,
text and custom data; any other element travels as :class:`OtherElem` (or, going out, as
the raw dict), so nothing the server sends is lost and nothing Tencent adds is refused.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import attrs

from ._exceptions import ValidationError

__all__ = [
    "MAX_MESSAGE_BYTES",
    "CustomElem",
    "Element",
    "OtherElem",
    "TextElem",
    "elements_from_json",
    "elements_to_json",
    "joined_text",
]

# "A message is at most 12 KB" (the usage-limits page); older SDK strings say 8 KB. The
# current page is the one the server is documented by, so 12 KB (12,288 bytes) of the
# message's JSON (MsgBody and CloudCustomData) is refused before sending; the fake
# answers 80002 past it too.
MAX_MESSAGE_BYTES = 12 * 1024

TEXT = "TIMTextElem"
CUSTOM = "TIMCustomElem"


def _text(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, not {type(value).__name__}")
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate: not text the server can store
        raise ValidationError(f"{field} is not valid Unicode text: {reprlib.repr(value)}") from None
    return value


def _check_text(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    _text(f"{attribute.name}", value)


@attrs.frozen(slots=True)
class TextElem:
    """A text element (``TIMTextElem``): ``TextElem("hello")``."""

    text: str = attrs.field(validator=_check_text)

    def to_json(self) -> dict[str, Any]:
        return {"MsgType": TEXT, "MsgContent": {"Text": self.text}}


@attrs.frozen(slots=True)
class CustomElem:
    """A custom element (``TIMCustomElem``): ``data``, ``desc`` and ``ext`` strings."""

    data: str = attrs.field(default="", validator=_check_text)
    desc: str = attrs.field(default="", validator=_check_text)
    ext: str = attrs.field(default="", validator=_check_text)

    def to_json(self) -> dict[str, Any]:
        return {
            "MsgType": CUSTOM,
            "MsgContent": {"Data": self.data, "Desc": self.desc, "Ext": self.ext},
        }


@attrs.frozen(slots=True)
class OtherElem:
    """An element of another type (image, face, location...), as the server sent it."""

    msg_type: str
    content: Mapping[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"MsgType": self.msg_type, "MsgContent": dict(self.content)}


Element: TypeAlias = "TextElem | CustomElem | OtherElem | Mapping[str, Any]"
"""One element of a message to send; a plain dict is sent as it is (the escape hatch)."""


def _element_to_json(index: int, element: object) -> dict[str, Any]:
    if isinstance(element, (TextElem, CustomElem, OtherElem)):
        return element.to_json()
    field = f"MsgBody[{index}]"
    if not isinstance(element, Mapping):
        raise ValidationError(
            f"{field} must be a TextElem, a CustomElem or a dict, not {type(element).__name__}"
        )
    msg_type, content = element.get("MsgType"), element.get("MsgContent")
    _text(f"{field}.MsgType", msg_type)
    if not msg_type:
        raise ValidationError(f"{field}.MsgType must not be empty")
    if not isinstance(content, Mapping):
        raise ValidationError(f"{field}.MsgContent must be an object")
    if msg_type == TEXT:
        _text(f"{field}.MsgContent.Text", content.get("Text"))
    return dict(element)


def elements_to_json(body: str | Element | Sequence[Element]) -> list[dict[str, Any]]:
    """A message to send as its ``MsgBody``: a ``str`` is one text element."""
    if isinstance(body, str):
        return [TextElem(body).to_json()]
    if isinstance(body, (TextElem, CustomElem, OtherElem, Mapping)):
        body = [body]
    if not isinstance(body, Sequence) or isinstance(body, (bytes, bytearray)):
        raise ValidationError(
            f"a message is a str or a list of elements, not {type(body).__name__}"
        )
    if not body:
        raise ValidationError("MsgBody must hold at least one element")
    return [_element_to_json(index, element) for index, element in enumerate(body)]


def elements_from_json(msg_body: object) -> tuple[TextElem | CustomElem | OtherElem, ...]:
    """A received ``MsgBody`` as elements; raise ``ValueError`` if it is not one."""
    if not isinstance(msg_body, list):
        raise ValueError("MsgBody is not an array")
    elements: list[TextElem | CustomElem | OtherElem] = []
    for index, item in enumerate(msg_body):
        if not isinstance(item, dict):
            raise ValueError(f"MsgBody[{index}] is not an object")
        msg_type, content = item.get("MsgType"), item.get("MsgContent", {})
        if not isinstance(msg_type, str) or not isinstance(content, dict):
            raise ValueError(f"MsgBody[{index}] has no MsgType string and MsgContent object")
        try:
            if msg_type == TEXT:
                elements.append(TextElem(content.get("Text")))  # type: ignore[arg-type]
                continue
            if msg_type == CUSTOM:
                elements.append(
                    CustomElem(
                        content.get("Data", ""), content.get("Desc", ""), content.get("Ext", "")
                    )
                )
                continue
        except ValidationError as err:
            raise ValueError(f"MsgBody[{index}]: {err}") from None
        elements.append(OtherElem(msg_type, content))
    return tuple(elements)


def joined_text(elements: Sequence[object]) -> str:
    """The text of a message: its text elements' texts, joined in order."""
    return "".join(element.text for element in elements if isinstance(element, TextElem))
