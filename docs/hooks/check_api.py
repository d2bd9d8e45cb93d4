"""A MkDocs hook: the build fails unless every public name of the package renders.

Every name in ``__all__`` of ``tencent_chat_robots``, ``tencent_chat_robots.callbacks``,
``tencent_chat_robots.testing`` and ``tencent_chat_robots.testing.pytest_plugin`` (and
the root's lazily imported Redis names) must have its heading, the anchor mkdocstrings
gives it, on the API reference page of its module.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from mkdocs.exceptions import PluginError

# module -> the page (source path, relative to docs/) that documents it
PAGES = {
    "tencent_chat_robots": "reference/index.md",
    "tencent_chat_robots.callbacks": "reference/callbacks.md",
    "tencent_chat_robots.testing": "reference/testing.md",
    "tencent_chat_robots.testing.pytest_plugin": "reference/testing.md",
}
_ANCHOR = re.compile(r'id="([^"]+)"')
_anchors: dict[str, set[str]] = {}


def public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    return [*module.__all__, *getattr(module, "_NEEDS_REDIS", ())]


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri in PAGES.values():
        _anchors[page.file.src_uri] = set(_ANCHOR.findall(html))
    return html


def on_post_build(**kwargs: Any) -> None:
    missing = [
        f"{module}.{name} (on {page})"
        for module, page in PAGES.items()
        for name in public_names(module)
        if f"{module}.{name}" not in _anchors.get(page, set())
    ]
    if missing:
        raise PluginError("public names missing from the API reference: " + ", ".join(missing))
