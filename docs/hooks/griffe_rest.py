"""A griffe extension: the reStructuredText habits of the package's docstrings, as Markdown.

The docstrings are written for ``help()`` and Sphinx-style readers: doctest lines
(``>>> ...``), ``.. code-block:: python`` directives, ``text::`` literal blocks and roles
such as ``:class:`Call```. Markdown would show doctest lines as nested quotes and the
roles as stray text, so each docstring is rewritten once, as griffe loads it: doctest
runs and directives become fenced code, roles become inline code. The source is not
touched (``src/`` keeps its docstrings as they are).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|exc|attr|data|mod|obj|const):`~?([^`]+)`")
_DIRECTIVE = re.compile(r"^(\s*)\.\. code-block::\s*(\w+)?\s*$")
_PROMPT = re.compile(r"^(\s*)(>>>|\.\.\.)( |$)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def to_markdown(text: str) -> str:
    """``text`` (a cleaned docstring) with its reST constructs as Markdown."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = _DIRECTIVE.match(line)
        literal = line.rstrip().endswith("::") and line.strip() != "::"
        if directive or literal:
            # An indented block after a blank line: the directive's or the literal's body.
            base = _indent(line)
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            k = j
            while k < len(lines) and (not lines[k].strip() or _indent(lines[k]) > base):
                k += 1
            body = lines[j:k]
            while body and not body[-1].strip():
                body.pop()
            if body:
                depth = min(_indent(b) for b in body if b.strip())
                pad = " " * base
                if directive:
                    language = directive.group(2) or "text"
                else:
                    out.append(line.rstrip()[:-1])  # "the conversation::" -> "...:"
                    out.append("")
                    language = "python"
                out.append(f"{pad}```{language}")
                out.extend(pad + b[depth:] if b.strip() else "" for b in body)
                out.append(f"{pad}```")
                out.append("")
                i = k
                continue
        prompt = _PROMPT.match(line)
        if prompt:
            pad = prompt.group(1)
            j = i
            while j < len(lines) and lines[j].startswith(pad) and lines[j].strip():
                j += 1
            if out and out[-1].strip():
                out.append("")
            out.append(f"{pad}```pycon")
            out.extend(lines[i:j])
            out.append(f"{pad}```")
            i = j
            continue
        out.append(_ROLE.sub(r"`\1`", line))
        i += 1
    return "\n".join(out)


class ReSTToMarkdown(griffe.Extension):
    """Rewrites every docstring of the loaded package with :func:`to_markdown`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
