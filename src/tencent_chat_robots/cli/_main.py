"""The ``tencent-chat-robots`` command group and its entry point."""

from __future__ import annotations

import click

from .._constants import DEFAULT_RATE_LIMIT
from ._bench import bench
from ._commands import COMMANDS
from ._context import ChatOptions
from ._demo import demo
from ._fake_server import fake_server
from ._provision import provision

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--sdkappid", envvar="TENCENT_CHAT_SDKAPPID", help="App SDKAppID.")
@click.option(
    "--secret-key",
    envvar="TENCENT_CHAT_SECRET_KEY",
    help="App secret key (better set through TENCENT_CHAT_SECRET_KEY).",
)
@click.option("--admin", envvar="TENCENT_CHAT_ADMIN", help="App admin account.")
@click.option(
    "--region", envvar="TENCENT_CHAT_REGION", help="china, singapore, seoul, frankfurt, ..."
)
@click.option(
    "--base-url", envvar="TENCENT_CHAT_BASE_URL", help="Send to this URL instead (a fake server)."
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=1),
    default=None,
    help=f"Calls per second per endpoint (default {DEFAULT_RATE_LIMIT}).",
)
@click.option("--json", "json_output", is_flag=True, help="Print JSON for scripts.")
@click.version_option(package_name="tencent-chat-robots")
@click.pass_context
def cli(
    ctx: click.Context,
    sdkappid: str | None,
    secret_key: str | None,
    admin: str | None,
    region: str | None,
    base_url: str | None,
    rate_limit: float | None,
    json_output: bool,
) -> None:
    """Manage Tencent Cloud Chat robots, or try it all on an embedded fake server (demo)."""
    ctx.obj = ChatOptions(
        sdkappid=sdkappid,
        secret_key=secret_key,
        admin=admin,
        region=region,
        base_url=base_url,
        rate_limit=rate_limit,
        json_output=json_output,
    )


for command in (*COMMANDS, provision, demo, bench, fake_server):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tencent-chat-robots")
