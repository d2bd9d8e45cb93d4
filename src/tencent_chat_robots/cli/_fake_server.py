"""``tencent-chat-robots fake-server``: the fake Tencent Chat server for other programs."""

from __future__ import annotations

import asyncio

import click

from ..testing import FakeTencentChat
from ._context import exit_with, run

__all__ = ["fake_server"]


@click.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option("--sdkappid", "app_id", default=1400000000, type=int, show_default=True)
@click.option("--secret-key", "key", default="fake-secret-key", show_default=True)
@click.option("--admin", "admin", default="administrator", show_default=True)
@click.option("--room", "rooms", multiple=True, help="A room that exists from the start.")
@click.option(
    "--live-group", "groups", multiple=True, help="A live group that exists from the start."
)
@click.option(
    "--live-room",
    "live_rooms",
    multiple=True,
    help="A TUILiveKit live room that exists from the start.",
)
@click.option(
    "--error-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Share of calls failing with an internal error.",
)
@click.option(
    "--latency-spread",
    default=0.0,
    type=click.FloatRange(0),
    help="Seconds of simulated network jitter at arrival.",
)
@click.option(
    "--rate-limit",
    "limit",
    default=None,
    type=click.IntRange(min=0),
    help="Calls/s allowed to every endpoint; 0 for none. Default: each endpoint's"
    " documented rate (200/s; 100/s for live rooms).",
)
@click.option(
    "--keep-calls",
    default=100_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Records kept of calls and arrivals (memory stays bounded however long it runs).",
)
def fake_server(
    host: str,
    port: int,
    app_id: int,
    key: str,
    admin: str,
    rooms: tuple[str, ...],
    groups: tuple[str, ...],
    live_rooms: tuple[str, ...],
    error_rate: float,
    latency_spread: float,
    limit: int | None,
    keep_calls: int,
) -> None:
    """Run the fake server until interrupted, printing its base URL."""
    fake = FakeTencentChat(
        keep_history=keep_calls,
        sdkappid=app_id,
        secret_key=key,
        admin=admin,
        rate_limit="documented" if limit is None else limit or None,
        error_rate=error_rate,
        latency_spread=latency_spread,
    )
    try:
        for room in rooms:
            fake.create_room(room)
        for group in groups:
            fake.create_live_group(group)
        for live_room in live_rooms:
            fake.create_live_room(live_room)
    except ValueError as err:
        exit_with(str(err), code=2)

    async def serve() -> None:
        async with fake.serve(host, port) as base_url:
            click.echo(base_url)  # alone on its line, for programs that start this one
            await asyncio.Event().wait()

    try:
        run(serve())
    except OSError as err:  # binding failed: port taken, address not local...
        exit_with(f"cannot listen on {host}:{port}: {err.strerror or err}", code=2)
    except SystemExit as stop:
        if stop.code == 130:  # Ctrl-C is how this command is meant to end
            return
        raise
