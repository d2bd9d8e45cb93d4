"""What every command shares: connection options, the client they make, output helpers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import attrs
import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from .._bulk import BulkOutcome, BulkRun
from .._client import TencentChat
from .._exceptions import TencentChatError, ValidationError

__all__ = [
    "ChatOptions",
    "console",
    "drive",
    "error_console",
    "exit_with",
    "print_json",
    "progress_bar",
    "run",
]

T = TypeVar("T")

# Printed strings are never parsed: ids, server messages and paths may contain "[/]" or
# ":smile:", which Rich would take for markup or emoji. Styles go through Text instead.
console = Console(highlight=False, markup=False, emoji=False)
error_console = Console(stderr=True, highlight=False, markup=False, emoji=False)


@attrs.frozen
class ChatOptions:
    """Connection settings from flags; anything unset falls back to the TENCENT_CHAT_* env vars."""

    sdkappid: str | None = None
    secret_key: str | None = attrs.field(default=None, repr=False)
    admin: str | None = None
    region: str | None = None
    base_url: str | None = None
    rate_limit: float | None = None
    json_output: bool = False

    def client(self, **overrides: Any) -> TencentChat:
        """A ``TencentChat`` for these settings; bad settings exit with a message."""
        kwargs: dict[str, Any] = {
            "sdkappid": self.sdkappid,
            "secret_key": self.secret_key,
            "admin": self.admin,
            "region": self.region,
            "base_url": self.base_url,
        }
        if self.rate_limit is not None:
            kwargs["rate_limit"] = self.rate_limit
        kwargs.update(overrides)
        try:
            return TencentChat(**kwargs)
        except ValidationError as err:
            exit_with(str(err), code=2)


def exit_with(message: str, *, code: int = 1) -> NoReturn:
    """Print ``message`` as an error and leave with ``code`` (no traceback: a user mistake)."""
    error_console.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    raise SystemExit(code)


def progress_bar(out: Console, description_width: int = 0) -> Progress:
    """The progress display of the long-running commands, on ``out``."""
    # TextColumn would parse the description as markup whatever the console says.
    return Progress(
        TextColumn(f"{{task.description:<{description_width}}}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
    )


async def drive(
    run: BulkRun,
    progress: Progress,
    title: str,
    on_outcome: Callable[[BulkOutcome[Any]], object],
) -> None:
    """Iterate ``run`` to its end: each outcome to ``on_outcome``, and a bar that follows.

    The one loop under ``demo``, ``bench`` and ``provision``.
    """
    task = progress.add_task(title, total=run.total)
    async for outcome in run:
        on_outcome(outcome)
        progress.advance(task)


def print_json(data: object) -> None:
    """Machine-readable output for scripts: one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; an SDK error ends the command with its message."""
    try:
        return asyncio.run(coro)
    except TencentChatError as err:
        exit_with(f"{type(err).__name__}: {err}")
    except KeyboardInterrupt:
        exit_with("interrupted", code=130)


def options_of(ctx: click.Context) -> ChatOptions:
    """The group's :class:`ChatOptions`, from any sub-command's context."""
    obj = ctx.find_object(ChatOptions)
    return obj if obj is not None else ChatOptions()
