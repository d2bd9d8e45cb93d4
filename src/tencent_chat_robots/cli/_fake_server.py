"""``tencent-chat-robots fake-server``: the fake Tencent Chat server for other programs.

What a program starting it can rely on:

- stdout's first line is the base URL alone (``http://127.0.0.1:PORT``), flushed once the
  server listens; with ``--json`` it is instead one JSON object on that one line:
  ``{"base_url", "sdkappid", "admin", "secret_key", "state_url", "calls_url"}``.
  Nothing else is written to stdout while it runs.
- stderr, for people: the credentials it accepts, where its state is seen, how to stop it.
- SIGINT (Ctrl-C) or SIGTERM is its normal stop: "fake-server: stopped by ..." on stderr,
  exit 0. A setting it cannot use exits 2 with the reason (with ``--json``, stdout gets
  the failure's JSON object as every command prints it).

The app it serves comes from the shared --sdkappid, --secret-key, --admin (before or after
``fake-server``) or the TENCENT_CHAT_* variables the group reads, else the fake's
defaults. A secret key taken from TENCENT_CHAT_SECRET_KEY is not echoed: that variable
may hold a real key.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal

import click
from rich.text import Text

from .._constants import ENV_SECRET_KEY
from ..testing import FakeTencentChat
from ..testing._app import CALLS_PATH, STATE_PATH
from ._context import error_console, exit_with, options_of, run
from ._signals import Interrupted, command_signals, signals_to

__all__ = ["fake_server"]

DEFAULT_SDKAPPID = 1400000000
DEFAULT_SECRET_KEY = "fake-secret-key"
DEFAULT_ADMIN = "administrator"
_DIGITS = re.compile(r"[0-9]+")


@click.command("fake-server")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (127.0.0.1: this machine only; :: or 0.0.0.0: every one).",
)
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (the printed base URL says which).",
)
@click.option(
    "--room", "rooms", multiple=True, help="A TUIRoom room that exists from the start (repeat)."
)
@click.option(
    "--live-group",
    "groups",
    multiple=True,
    help="A live group (AVChatRoom) that exists from the start (repeat).",
)
@click.option(
    "--live-room",
    "live_rooms",
    multiple=True,
    help="A TUILiveKit live room that exists from the start (repeat).",
)
@click.option(
    "--error-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of authenticated calls failing with an internal error (10002, or 100001"
    " for rooms and live rooms).",
)
@click.option(
    "--latency-spread",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds of simulated network jitter: arrivals are counted against the limit at"
    " receipt + uniform(0, this).",
)
@click.option(
    "--server-rate-limit",
    "limit",
    default=None,
    type=click.IntRange(min=0),
    metavar="N",
    help="Calls per second every endpoint allows before answering 60007; 0 for no limit."
    " Default: each endpoint's documented rate (200/s; 100/s for live rooms).",
)
@click.option(
    "--rate-limit",
    "old_limit",
    default=None,
    type=click.IntRange(min=0),
    hidden=True,
    help="Deprecated name of --server-rate-limit.",
)
@click.option(
    "--keep-calls",
    default=100_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Records kept of calls and arrivals (memory stays bounded however long it runs).",
)
@click.option(
    "--callback",
    "callback_url",
    metavar="URL",
    help="The app's callback URL: a sendmsg to a robot is delivered there as a signed"
    " Bot.OnC2CMessage, as Chat does.",
)
@click.option(
    "--callback-token",
    envvar="TENCENT_CHAT_CALLBACK_TOKEN",
    metavar="TOKEN",
    help="The console's callback token: callbacks carry Sign and RequestTime"
    " (default: TENCENT_CHAT_CALLBACK_TOKEN; none: unsigned).",
)
@click.pass_context
def fake_server(
    ctx: click.Context,
    host: str,
    port: int,
    rooms: tuple[str, ...],
    groups: tuple[str, ...],
    live_rooms: tuple[str, ...],
    error_rate: float,
    latency_spread: float,
    limit: int | None,
    old_limit: int | None,
    keep_calls: int,
    callback_url: str | None,
    callback_token: str | None,
) -> None:
    """Run the fake server until Ctrl-C or SIGTERM, printing its base URL.

    stdout's first line is the base URL alone (with --json: one JSON object on one line,
    with the credentials); stderr says the credentials it accepts: --sdkappid,
    --secret-key, --admin or the TENCENT_CHAT_* variables, by default 1400000000,
    fake-secret-key, administrator. Its state is seen with GET /_fake/state and
    GET /_fake/calls?limit=N (not Tencent APIs: never counted nor recorded).
    With --callback, a sendmsg to a robot is also delivered to that URL as Chat would
    (signed with --callback-token), for a robot service written in any language.
    """
    options = options_of(ctx)
    app_id = _app_id(options.sdkappid)
    key = DEFAULT_SECRET_KEY if options.secret_key is None else options.secret_key
    admin = DEFAULT_ADMIN if options.admin is None else options.admin
    if not key:
        exit_with("--secret-key must not be empty", code=2)
    if not admin:
        exit_with("--admin must not be empty", code=2)
    if old_limit is not None:
        if limit is not None:
            exit_with("give --server-rate-limit only (--rate-limit is its old name)", code=2)
        _warn(
            "--rate-limit on fake-server is deprecated: use --server-rate-limit"
            " (everywhere else --rate-limit is the client's pace)"
        )
        limit = old_limit
    if options.rate_limit is not None:
        _warn(
            "--rate-limit before fake-server is a client's pace and does nothing here;"
            " the server's limit is --server-rate-limit"
        )
    fake = FakeTencentChat(
        keep_history=keep_calls,
        sdkappid=app_id,
        secret_key=key,
        admin=admin,
        rate_limit="documented" if limit is None else limit or None,
        error_rate=error_rate,
        latency_spread=latency_spread,
    )
    if callback_url is not None:
        if not callback_url.startswith(("http://", "https://")):
            exit_with(
                f"--callback must be an http:// or https:// URL, got {callback_url!r}", code=2
            )
        fake.set_callback(callback_url, token=callback_token or None)
    try:
        for room in rooms:
            fake.create_room(room)
        for group in groups:
            fake.create_live_group(group)
        for live_room in live_rooms:
            fake.create_live_room(live_room)
    except ValueError as err:
        exit_with(str(err), code=2)
    # Not echoed when it came from the variable, which may hold a real key.
    shown_key = None if key == os.environ.get(ENV_SECRET_KEY) else key
    json_output = options.json_output
    stopped_by: list[signal.Signals] = []

    async def serve() -> None:
        stop = asyncio.Event()

        def on_signal(sig: signal.Signals) -> None:
            stopped_by.append(sig)
            stop.set()

        with signals_to(on_signal):
            async with fake.serve(host, port) as base_url:
                _announce(base_url, fake, shown_key, json_output=json_output)
                await stop.wait()

    try:
        with command_signals():
            run(serve())
    except OSError as err:  # binding failed: port taken, address not local...
        exit_with(f"cannot listen on {host}:{port}: {err.strerror or err}", code=2)
    except Interrupted as early:  # before the server took signals over
        stopped_by.append(early.signal)
    by = f" by {stopped_by[0].name}" if stopped_by else ""
    error_console.print(f"fake-server: stopped{by}", soft_wrap=True)


def _app_id(value: str | None) -> int:
    if value is None:
        return DEFAULT_SDKAPPID
    text = value.strip()
    if not _DIGITS.fullmatch(text) or int(text) == 0:
        exit_with(f"--sdkappid must be a positive integer, got {value!r}", code=2)
    return int(text)


def _warn(message: str) -> None:
    error_console.print(Text.assemble(("warning:", "bold yellow"), " ", message), soft_wrap=True)


def _announce(
    base_url: str, fake: FakeTencentChat, shown_key: str | None, *, json_output: bool
) -> None:
    """The base URL (or the JSON object) on stdout's first line; the rest on stderr."""
    state_url, calls_url = f"{base_url}{STATE_PATH}", f"{base_url}{CALLS_PATH}"
    if json_output:
        document = {
            "base_url": base_url,
            "sdkappid": fake.sdkappid,
            "admin": fake.admin,
            "secret_key": shown_key,
            "state_url": state_url,
            "calls_url": calls_url,
        }
        click.echo(json.dumps(document, ensure_ascii=False, separators=(",", ":")))
    else:
        click.echo(base_url)  # alone on its line, for programs that start this one
    key = shown_key if shown_key is not None else f"the value of {ENV_SECRET_KEY}"
    for line in (
        f"fake-server: a fake Tencent Chat app at {base_url}, accepting",
        f"  sdkappid:   {fake.sdkappid}",
        f"  admin:      {fake.admin}",
        f"  secret key: {key}",
        f"its state: GET {state_url}, GET {calls_url}?limit=N",
        "Stop it with Ctrl-C (or SIGTERM).",
    ):
        error_console.print(line, soft_wrap=True)
