"""The ``tencent-chat-robots`` command group and its entry point."""

from __future__ import annotations

import sys

import click

from ._bench import bench
from ._context import error_console, failure_document, print_json, shared_options
from ._demo import demo
from ._every_command import COMMANDS
from ._fake_server import fake_server
from ._provision import provision

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tencent-chat-robots")
def cli() -> None:
    """Manage Tencent Cloud Chat robots, or try it all on an embedded fake server (demo).

    The connection options (--sdkappid, --secret-key, --admin, --region, --base-url,
    --rate-limit, --redis-url, --json) go before or after a command's name.
    """


for command in (*COMMANDS, provision, demo, bench, fake_server):
    cli.add_command(command)
# The fake server takes the credentials it accepts; the client's settings are not its own.
shared_options(
    cli, on_group=True, unused={"fake-server": ("region", "base_url", "rate_limit", "redis_url")}
)


def main(args: list[str] | None = None) -> None:
    """Console-script entry point."""
    argv = sys.argv[1:] if args is None else args
    try:
        cli.main(argv, prog_name="tencent-chat-robots", standalone_mode=False)
    except click.ClickException as err:
        # A usage error is still one JSON object on stdout with --json.
        options = argv[: argv.index("--")] if "--" in argv else argv
        if "--json" in options:
            print_json(failure_document(err.format_message(), code=err.exit_code))
        err.show()
        raise SystemExit(err.exit_code) from None
    except click.exceptions.Abort:
        error_console.print("Aborted!")
        raise SystemExit(1) from None
    except click.exceptions.Exit as done:
        raise SystemExit(done.exit_code) from None
    raise SystemExit(0)
