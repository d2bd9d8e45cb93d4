"""Every Python block of the README and of ``docs/`` is run or type-checked.

A block is a fenced ```` ```python ```` block; a marker, an HTML comment on the line
before its fence (blank lines between allowed), says what it is:

- ``<!-- program: NAME -->``: a whole program, run as ``__main__`` with the setup NAME
  (``PROGRAMS`` below: ``standalone`` as it is, ``quickstart`` against the fake server
  on loopback);
- ``<!-- fragment: needs chat, fake -->``: a piece of a program, which uses names it does
  not define (``NEEDS`` below declares each, e.g. ``chat: TencentChat``);
- no marker: a fragment that needs no name beyond the package's public ones.

Every block, programs included, is type-checked by one ``mypy --strict`` run (with the
project's mypy settings). A fragment's module starts with the package's public names
imported; one with ``await``, ``async with`` or ``async for`` outside a function is
checked as the body of an ``async def``. A block that only includes a file
(``--8<-- "examples/NAME.py"``, pymdownx.snippets) must name an example that exists and
that ``tests/test_examples*.py`` runs. Shell blocks are not checked. The site's own
build (``nox -s docs``: ``mkdocs build --strict``) checks links and the nav; this file
also checks that every page is in the nav, with no build.
"""

from __future__ import annotations

import ast
import contextlib
import re
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ._servers import quickstart_fake

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
SOURCES = [README, *PAGES]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<lang>[\w+-]*)")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>program|fragment)\s*:\s*(?P<args>.*?)\s*-->\s*$")
_INCLUDE = re.compile(r'^--8<--\s+"(?P<path>[^":]+)(?::[^"]*)?"$')


@dataclass(frozen=True)
class Block:
    """One fenced Python block: where it is, its marker, its code (dedented)."""

    path: Path
    line: int  # of the first line of code, 1-based
    code: str
    kind: str  # "program", "fragment" or "include"
    args: str  # the program's setup, or the names a fragment needs

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def needs(self) -> list[str]:
        text = self.args.removeprefix("needs").strip() if self.kind == "fragment" else ""
        return [name.strip() for name in text.split(",") if name.strip()]

    @property
    def includes(self) -> list[str]:
        lines = (line.strip() for line in self.code.splitlines())
        return [m.group("path") for m in map(_INCLUDE.match, lines) if m]


def _blocks(path: Path) -> Iterator[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening.group("indent"), opening.group("fence")
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if opening.group("lang") == "python":
            code = textwrap.dedent(
                "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end])
            )
            before = i - 1
            while before >= 0 and not lines[before].strip():
                before -= 1
            marker = _MARKER.match(lines[before]) if before >= 0 else None
            if code.strip() and all(
                _INCLUDE.match(line.strip()) for line in code.split("\n") if line.strip()
            ):
                kind, args = "include", ""
            elif marker:
                kind, args = marker.group("kind"), marker.group("args")
            else:
                kind, args = "fragment", ""
            yield Block(path, i + 2, code + "\n", kind, args)
        i = end + 1


BLOCKS = [block for path in SOURCES for block in _blocks(path)]
CODE = [block for block in BLOCKS if block.kind != "include"]
PROGRAMS_TO_RUN = [block for block in BLOCKS if block.kind == "program"]


# -- the names fragments may need ------------------------------------------------------------

# Always in scope: the package's public names (the docs use them without importing).
PRELUDE = """\
from tencent_chat_robots import *
from tencent_chat_robots import LimiterUnavailableError, RedisRateLimiter
from tencent_chat_robots.callbacks import *
from tencent_chat_robots.testing import FakeTencentChat
"""

NEEDS = {
    "chat": "chat: TencentChat",
    "fake": "fake: FakeTencentChat",
    "bot": "bot: RobotCallbacks",
    "app": "import fastapi\napp: fastapi.FastAPI",
    "Chat": "Chat = TencentChat  # the dependency of the web services page",
    "web": "from aiohttp import web",
    "key": "key: str",
    "robots": "robots: list[str]",
    "rooms_from_db": (
        "import collections.abc\n"
        "rooms_from_db: collections.abc.Callable[[], collections.abc.Iterable[str]]"
    ),
    "log": "import logging\nlog: logging.Logger",
    "stop_jobs": (
        "import collections.abc\n"
        "stop_jobs: collections.abc.Callable[[], collections.abc.Awaitable[None]]"
    ),
    "progress": "import typing\nprogress: typing.Any",
    "llm": (
        "import collections.abc, typing\n"
        "class _Model(typing.Protocol):\n"
        "    def stream(self, text: str) -> collections.abc.AsyncIterator[str]: ...\n"
        "llm: _Model"
    ),
    "my_bot_setup": (
        "import collections.abc\n"
        "my_bot_setup: collections.abc.Callable[[TencentChat], collections.abc.Awaitable[None]]"
    ),
}


def _has_top_level_async(tree: ast.Module) -> bool:
    """Whether ``await``/``async with``/``async for`` appear outside any function."""
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)

    def walk(node: ast.AST) -> Iterator[ast.AST]:
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, scopes):
                yield child
                yield from walk(child)

    asynchronous = (ast.Await, ast.AsyncWith, ast.AsyncFor)
    return any(
        isinstance(node, asynchronous) or (isinstance(node, ast.comprehension) and node.is_async)
        for node in walk(tree)
    )


def module_for(block: Block) -> tuple[str, int]:
    """The module mypy checks for ``block``, and the offset of the block's first line."""
    if block.kind == "program":
        return block.code, 0
    head = PRELUDE + "".join(NEEDS[name] + "\n" for name in block.needs)
    tree = ast.parse(block.code, filename=block.where)
    if _has_top_level_async(tree):
        head += "\n\nasync def _fragment() -> None:\n"
        return head + textwrap.indent(block.code, "    "), head.count("\n")
    return head + block.code, head.count("\n")


# -- the setups programs run with ------------------------------------------------------------


@contextlib.contextmanager
def _standalone(monkeypatch: pytest.MonkeyPatch, code: str) -> Iterator[None]:
    yield


@contextlib.contextmanager
def _quickstart(monkeypatch: pytest.MonkeyPatch, code: str) -> Iterator[None]:
    with quickstart_fake(monkeypatch, code) as fake:
        yield
    assert fake.robots == []  # created, used, deleted
    assert fake.room_members("room-1") == ["@RBT#001"]


PROGRAMS: dict[str, Callable[[pytest.MonkeyPatch, str], contextlib.AbstractContextManager[None]]]
PROGRAMS = {"standalone": _standalone, "quickstart": _quickstart}


# -- the tests -------------------------------------------------------------------------------


def test_the_readme_and_every_page_have_their_blocks_found() -> None:
    assert {block.path for block in BLOCKS} >= {README, DOCS / "getting-started.md"}
    assert any(block.args == "quickstart" and block.path == README for block in BLOCKS)
    markers = sum(
        bool(_MARKER.match(line))
        for path in SOURCES
        for line in path.read_text(encoding="utf-8").splitlines()
    )
    marked = [block for block in BLOCKS if block.kind == "program" or block.needs]
    assert markers == len(marked), "a marker that precedes no Python block"


@pytest.mark.parametrize("block", CODE, ids=lambda block: block.where)
def test_each_block_compiles_and_names_known_needs(block: Block) -> None:
    unknown = sorted(set(block.needs) - set(NEEDS))
    assert not unknown, f"{block.where}: no declaration for {unknown}: add it to NEEDS"
    if block.kind == "program":
        assert block.args in PROGRAMS, f"{block.where}: unknown program setup {block.args!r}"
    module, _ = module_for(block)
    compile(module, block.where, "exec")


@pytest.mark.parametrize("block", PROGRAMS_TO_RUN, ids=lambda block: block.where)
def test_each_program_runs(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    with PROGRAMS[block.args](monkeypatch, block.code):
        exec(compile(block.code, block.where, "exec"), {"__name__": "__main__"})


def test_every_block_type_checks(tmp_path: Path) -> None:
    """One mypy run for all blocks; each error is reported at its line in the docs."""
    from mypy import api  # in the test group: this runs in every tests session

    files: dict[str, tuple[Block, int]] = {}
    for number, block in enumerate(CODE):
        module, offset = module_for(block)
        name = f"docs_block_{number:03d}.py"
        (tmp_path / name).write_text(module, encoding="utf-8")
        files[name] = (block, offset)
    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            *(str(tmp_path / name) for name in files),
        ]
    )

    def located(line: str) -> str:
        match = re.match(r"^(?:.*[/\\])?(docs_block_\d+\.py):(\d+):(.*)$", line)
        if not match or match.group(1) not in files:
            return line
        block, offset = files[match.group(1)]
        line_in_block = int(match.group(2)) - offset
        if line_in_block < 1:
            return f"{block.where} (its prelude, line {match.group(2)}):{match.group(3)}"
        return f"{block.path.relative_to(ROOT)}:{block.line + line_in_block - 1}:{match.group(3)}"

    report = "\n".join(located(line) for line in stdout.splitlines())
    assert status == 0, f"mypy found problems in the docs' code:\n{report}\n{stderr}"


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.kind == "include"], ids=lambda block: block.where
)
def test_each_included_file_exists_and_is_run_by_a_test(block: Block) -> None:
    runners = " ".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_examples*.py")
    )
    for included in block.includes:
        path = ROOT / included
        assert path.is_file(), f"{block.where}: {included} does not exist"
        assert path.parent.name == "examples", f"{block.where}: include only examples"
        assert re.search(rf"\b{re.escape(path.stem)}\b", runners), f"no test runs {included}"


def test_every_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config.split("\nnav:\n", 1)[1]
    listed = set(re.findall(r"([\w./-]+\.md)\s*$", nav, re.MULTILINE))
    pages = {page.relative_to(DOCS).as_posix() for page in PAGES}
    assert pages == listed


def test_the_two_commands_are_the_readmes_verbatim() -> None:
    readme = README.read_text(encoding="utf-8")
    started = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    for section in ("## Try it (the main command)", "## Run the tests"):
        match = re.search(r"```bash\n(.*?)```", readme.split(section, 1)[1], re.DOTALL)
        assert match is not None
        assert f"{section}\n" in started
        assert match.group(1) in started.split(section, 1)[1]


def test_the_readmes_links_into_the_docs_resolve() -> None:
    """The README is not part of the site's build: its relative links are checked here."""
    readme = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\((?!https?://)([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert targets, "the README links into the docs"
    for target in targets:
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"
