"""Searching what a tool captured for secrets, and saying precisely where each one was.

What a tool captured is given as a tree of dicts, lists and leaves (str, bytes, or any
object, searched as its ``repr``). A find is reported with its path in that tree, each
list element labelled by its ``function``/``name``/``type``... field when it has one,
e.g. ``envelopes[0].items[0](event).payload.exception.values[2](APITimeoutError)
.stacktrace.frames[4](_attempt).vars.url``, and a snippet of the text around it with
every secret masked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import quote

import attrs

__all__ = ["RAW", "Find", "SecretSet", "find_secrets", "leak_report"]

_SNIPPET = 60  # characters shown each side of a find
_PREFIX = 40  # a truncated copy still carries this much of a secret
# Fields that name a list element (a frame's function, a span's name, an exception's type).
_LABEL_KEYS = ("function", "name", "exc_type", "type", "op", "category", "logger")
# Leaves under these paths repeat, as one text, what the structured parts hold; a find
# there is reported only if the structured parts did not already report that secret.
RAW = "raw"


@attrs.frozen
class _Needle:
    secret: str  # what it is: "secret key", "UserSig sent #1"...
    form: str  # "raw", "percent-encoded", "first 40 chars"
    text: str
    whole: str  # the full form this needle is (a prefix of)


@attrs.define(repr=False)
class SecretSet:
    """Named secrets to look for; held so that its repr shows none of them."""

    named: dict[str, str] = attrs.field(factory=dict)

    def add(self, name: str, value: str) -> None:
        if value and value not in self.named.values():
            self.named[name] = value

    def __repr__(self) -> str:
        return f"SecretSet({', '.join(self.named)})"

    def needles(self) -> list[_Needle]:
        """Every searched form of every secret, longest first."""
        found: dict[str, _Needle] = {}
        for name, value in self.named.items():
            # errors="surrogatepass": a secret may hold a lone surrogate on purpose.
            encoded = quote(value, safe="", errors="surrogatepass")
            raw = "raw" if encoded != value else "raw (= percent-encoded)"
            for form, text, whole in (
                (raw, value, value),
                ("percent-encoded", encoded, encoded),
                (f"first {_PREFIX} chars", value[:_PREFIX], value),
            ):
                found.setdefault(text, _Needle(name, form, text, whole))
        return sorted(found.values(), key=lambda needle: -len(needle.text))


@attrs.frozen
class Find:
    secret: str
    form: str
    path: str
    snippet: str


def _label(node: object) -> str:
    if isinstance(node, Mapping):
        for key in _LABEL_KEYS:
            value = node.get(key)
            if isinstance(value, str) and value:
                return f"({value})"
    return ""


def _leaves(node: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            yield f"{child} (the key)", str(key)
            yield from _leaves(value, child)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{path}[{index}]{_label(value)}")
    elif isinstance(node, str):
        yield path, node
    elif isinstance(node, (bytes, bytearray)):
        yield path, bytes(node).decode("utf-8", "backslashreplace")
    elif node is not None and not isinstance(node, (int, float)):
        yield path, repr(node)


def _mask(text: str, needles: list[_Needle]) -> str:
    for needle in needles:  # longest first, so a whole secret is masked before its prefix
        text = text.replace(needle.text, f"<{needle.secret}>")
    return text


def _finds_in(text: str, path: str, needles: list[_Needle]) -> Iterator[Find]:
    taken: list[tuple[int, int]] = []
    for needle in needles:
        start = text.find(needle.text)
        while start != -1:
            end = start + len(needle.text)
            # The copy may go on past the needle (a prefix of a longer secret form).
            while end < len(text) and end - start < len(needle.whole):
                if text[end] != needle.whole[end - start]:
                    break
                end += 1
            if not any(start < e and s < end for s, e in taken):
                taken.append((start, end))
                before = _mask(text[max(0, start - _SNIPPET) : start], needles)
                after = _mask(text[end : end + _SNIPPET], needles)
                yield Find(needle.secret, needle.form, path, f"{before}<{needle.secret}>{after}")
            start = text.find(needle.text, start + 1)


def find_secrets(captured: object, secrets: SecretSet) -> list[Find]:
    """Every copy of a secret in ``captured``; raw dumps only for secrets found nowhere else."""
    needles = secrets.needles()
    finds = [
        find for path, text in _leaves(captured, "") for find in _finds_in(text, path, needles)
    ]
    structured = {find.secret for find in finds if not find.path.startswith(RAW)}
    return [f for f in finds if not f.path.startswith(RAW) or f.secret not in structured]


def leak_report(tool: str, finds: Iterable[Find]) -> str:
    """One line per (secret, form, path), with the first snippet and how many copies."""
    grouped: dict[tuple[str, str, str], list[Find]] = {}
    for find in finds:
        grouped.setdefault((find.secret, find.form, find.path), []).append(find)
    lines = [f"{tool} captured a secret in {len(grouped)} place(s):"]
    for (secret, form, path), same in grouped.items():
        copies = f" ({len(same)} copies)" if len(same) > 1 else ""
        lines.append(f"  - {secret} [{form}] at {path}{copies}:\n      {same[0].snippet!r}")
    return "\n".join(lines)
