"""What every command shares: connection options, the client they make, output helpers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Collection, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar

import attrs
import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from .._bulk import BulkOutcome, BulkRun
from .._client import TencentChat
from .._constants import DEFAULT_RATE_LIMIT, ENV_SDKAPPID, ENV_SECRET_KEY
from .._endpoints import PACE_FRACTION
from .._exceptions import AuthenticationError, TencentChatError, ValidationError
from .._limiter import RateLimiter

__all__ = [
    "SHARED_OPTIONS",
    "ChatOptions",
    "console",
    "drive",
    "error_console",
    "exit_with",
    "failure_document",
    "hint_for",
    "options_of",
    "print_json",
    "progress_bar",
    "run",
    "shared_options",
]

T = TypeVar("T")

# Printed strings are never parsed: ids, server messages and paths may contain "[/]" or
# ":smile:", which Rich would take for markup or emoji. Styles go through Text instead.
console = Console(highlight=False, markup=False, emoji=False)
error_console = Console(stderr=True, highlight=False, markup=False, emoji=False)

# Where the shared options' values are gathered, in the root context's meta.
_META_KEY = "tencent_chat_robots.options"
PROGRESS_EVERY = 5.0  # seconds between progress lines when the output is not a terminal


@attrs.frozen
class ChatOptions:
    """Connection settings from flags; anything unset falls back to the TENCENT_CHAT_* env vars."""

    sdkappid: str | None = None
    secret_key: str | None = attrs.field(default=None, repr=False)
    admin: str | None = None
    region: str | None = None
    base_url: str | None = None
    rate_limit: float | None = None
    redis_url: str | None = attrs.field(default=None, repr=False)  # may hold a password
    json_output: bool = False

    def client(self, **overrides: Any) -> TencentChat:
        """A ``TencentChat`` for these settings; bad settings exit 2 with a message."""
        kwargs: dict[str, Any] = {
            "sdkappid": self.sdkappid,
            "secret_key": self.secret_key,
            "admin": self.admin,
            "region": self.region,
            "base_url": self.base_url,
        }
        rate = self.rate_limit
        if self.redis_url is not None:
            kwargs["limiter"] = self._redis_limiter(rate or DEFAULT_RATE_LIMIT)
        elif rate is not None:
            kwargs["rate_limit"] = rate
        if rate is not None:
            _warn_of_pace(rate)
        kwargs.update(overrides)
        # Said here in the command line's words: the SDK's would say "pass sdkappid=".
        if kwargs["sdkappid"] is None and not os.environ.get(ENV_SDKAPPID):
            exit_with(f"no app: give --sdkappid or set {ENV_SDKAPPID}", code=2)
        if kwargs["secret_key"] is None and not os.environ.get(ENV_SECRET_KEY):
            exit_with(f"no secret key: set {ENV_SECRET_KEY} or give --secret-key", code=2)
        try:
            with _sdk_warnings_silenced():  # the pace warning is worded above
                return TencentChat(**kwargs)
        except ValidationError as err:
            exit_with(str(err), code=2, error=err)

    def _redis_limiter(self, rate: float) -> Any:
        try:
            from .._redis_limiter import RedisRateLimiter
        except ImportError:
            exit_with("--redis-url needs redis: pip install 'tencent-chat-robots[redis]'", code=2)
        try:
            return RedisRateLimiter.from_url(str(self.redis_url), rate=rate)
        except (ValidationError, ValueError) as err:
            exit_with(f"--redis-url: {err}", code=2, error=err)


def _warn_of_pace(rate: float) -> None:
    """A warning on stderr when --rate-limit paces an API above 95% of its documented rate."""
    try:
        limiter = RateLimiter(rate)
    except ValidationError:
        return  # the client refuses it, saying why
    risky = limiter.above_share()
    if risky is None:
        return
    spec, pace = risky
    error_console.print(
        Text.assemble(
            ("warning:", "bold yellow"),
            f" --rate-limit {rate:g} paces {spec.method} at {pace:g}/s, above"
            f" {PACE_FRACTION:.0%} of its documented {spec.documented_rate}/s:"
            " network jitter can bunch calls into 60007 refusals (the default is"
            f" {DEFAULT_RATE_LIMIT:g})",
        ),
        soft_wrap=True,
    )


@contextmanager
def _sdk_warnings_silenced() -> Iterator[None]:
    sdk = logging.getLogger("tencent_chat_robots")
    level = sdk.level
    sdk.setLevel(logging.ERROR)
    try:
        yield
    finally:
        sdk.setLevel(level)


# --- the options every command takes, before or after its name --------------------------


def _store(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, _: click.Parameter, value: Any) -> None:
        # Given on the group and on the command, the command's (parsed later) wins.
        if value is not None and value is not False:
            ctx.find_root().meta.setdefault(_META_KEY, {})[name] = value

    return store


def _option(
    *decls: str, name: str, envvar: str | None = None, help: str, **kwargs: Any
) -> Callable[[bool], click.Option]:
    def make(on_group: bool) -> click.Option:
        return click.Option(
            list(decls),
            # Only the group reads the environment: a command's copy would override the
            # group's flag with the variable's value.
            envvar=envvar if on_group else None,
            expose_value=False,
            callback=_store(name),
            help=help,
            **kwargs,
        )

    return make


SHARED_OPTIONS: dict[str, Callable[[bool], click.Option]] = {
    "sdkappid": _option("--sdkappid", name="sdkappid", envvar=ENV_SDKAPPID, help="App SDKAppID."),
    "secret_key": _option(
        "--secret-key",
        name="secret_key",
        envvar=ENV_SECRET_KEY,
        help=f"App secret key (better set through {ENV_SECRET_KEY}).",
    ),
    "admin": _option(
        "--admin", name="admin", envvar="TENCENT_CHAT_ADMIN", help="App admin account."
    ),
    "region": _option(
        "--region",
        name="region",
        envvar="TENCENT_CHAT_REGION",
        help="china, singapore, seoul, frankfurt, ...",
    ),
    "base_url": _option(
        "--base-url",
        name="base_url",
        envvar="TENCENT_CHAT_BASE_URL",
        help="Send to this URL instead (a fake server).",
    ),
    "rate_limit": _option(
        "--rate-limit",
        name="rate_limit",
        type=click.FloatRange(min=1),
        help=f"The client's pace of the 200/s APIs, calls per second (default"
        f" {DEFAULT_RATE_LIMIT:g}); other APIs get the same share of their documented rate.",
    ),
    "redis_url": _option(
        "--redis-url",
        name="redis_url",
        envvar="TENCENT_CHAT_REDIS_URL",
        metavar="URL",
        help="Share the pace with every process using this Redis (redis://host:port/db):"
        " for runs beside others on the same app. Needs the [redis] extra.",
    ),
    "json_output": _option(
        "--json", name="json_output", is_flag=True, help="Print one JSON object, for scripts."
    ),
}


def shared_options(
    command: click.Command,
    *,
    on_group: bool = False,
    unused: Mapping[str, Collection[str]] = MappingProxyType({}),
) -> None:
    """Give ``command`` (and, for a group, its commands) the shared options it lacks.

    A command that declares an option of the same flag keeps its own; ``unused`` names
    (by command name) the shared options a command has no use for.
    """
    taken = {opt for param in command.params for opt in param.opts}
    for name, make in SHARED_OPTIONS.items():
        option = make(on_group)
        if name not in unused.get(command.name or "", ()) and not taken.intersection(option.opts):
            command.params.append(option)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            shared_options(sub, unused=unused)


def options_of(ctx: click.Context) -> ChatOptions:
    """The shared options, however placed, from any command's context."""
    return ChatOptions(**ctx.find_root().meta.get(_META_KEY, {}))


def _json_mode() -> bool:
    ctx = click.get_current_context(silent=True)
    return ctx is not None and options_of(ctx).json_output


# --- output -----------------------------------------------------------------------------


def failure_document(
    message: str, *, code: int, error: BaseException | str | None = None
) -> dict[str, object]:
    """The JSON object of a command that failed: ``ok`` false, the error, the exit code."""
    if isinstance(error, BaseException):
        kind = type(error).__name__
    else:
        kind = error or ("UsageError" if code == 2 else "Error")
    return {
        "ok": False,
        "error": {
            "class": kind,
            "code": getattr(error, "code", None) if isinstance(error, BaseException) else None,
            "message": message,
        },
        "exit_code": code,
    }


def exit_with(message: str, *, code: int = 1, error: BaseException | str | None = None) -> NoReturn:
    """Print ``message`` as an error and leave with ``code`` (no traceback: a user mistake).

    With --json, stdout gets the failure's JSON object too (:func:`failure_document`).
    """
    if _json_mode():
        print_json(failure_document(message, code=code, error=error))
    error_console.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    raise SystemExit(code)


def hint_for(error: BaseException) -> str:
    """What to check, for the errors a command-line setting causes; else ''."""
    if isinstance(error, AuthenticationError):
        return (
            " (check the secret key: --secret-key or TENCENT_CHAT_SECRET_KEY; the app:"
            " --sdkappid; the admin account: --admin)"
        )
    return ""


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

    The one loop under ``demo``, ``bench`` and ``provision``. Where the output is not a
    terminal (a log file), a bar shows nothing until the end: a line every
    ``PROGRESS_EVERY`` seconds says how far the run is instead.
    """
    task = progress.add_task(title, total=run.total)
    out = progress.console
    lines = not out.is_terminal
    began = last = time.monotonic()
    done = 0
    async for outcome in run:
        on_outcome(outcome)
        progress.advance(task)
        done += 1
        if lines and (now := time.monotonic()) - last >= PROGRESS_EVERY:
            last = now
            of = f"/{run.total}" if run.total is not None else ""
            out.print(f"{title}: {done}{of} done, {now - began:.0f} s", soft_wrap=True)


def print_json(data: object) -> None:
    """Machine-readable output for scripts: one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; an SDK error ends the command with its message."""
    try:
        return asyncio.run(coro)
    except TencentChatError as err:
        exit_with(f"{type(err).__name__}: {err}{hint_for(err)}", error=err)
    except KeyboardInterrupt:
        exit_with("interrupted", code=130, error="KeyboardInterrupt")
