"""Every single-call command, and each API's hidden alias: one command per row, checked.

Each API's command also answers, hidden, to its method name as the Python client spells
it (``add_robot_to_room``) or with dashes (``add-robot-to-room``). Every name comes from
``_endpoints.ENDPOINTS``.
"""

from __future__ import annotations

import click

from .._endpoints import ENDPOINTS, EndpointSpec
from . import _message_commands  # noqa: F401  # its commands join the groups on import
from ._commands import COMMAND_OF, GROUPS, _epilog

__all__ = ["ALIASES", "COMMANDS"]


_UNCOMMANDED = [spec.method for spec in ENDPOINTS if spec.method not in COMMAND_OF]
if _UNCOMMANDED:  # a row added to the table without its command: said at import
    raise RuntimeError(f"no command for {', '.join(_UNCOMMANDED)}")


def _alias(spec: EndpointSpec, name: str) -> click.Command:
    """A hidden top-level command ``name`` that runs ``spec``'s command."""
    command = COMMAND_OF[spec.method]
    return click.Command(
        name,
        callback=command.callback,
        params=list(command.params),  # the same arguments; the shared options are added apart
        help=command.help,
        epilog=_epilog(spec, alias=True),
        short_help=command.short_help,
        hidden=True,
    )


ALIASES: tuple[click.Command, ...] = tuple(
    _alias(spec, name)
    for spec in ENDPOINTS
    for name in dict.fromkeys((spec.method, spec.method.replace("_", "-")))
)
"""Each API's command under its method name, and the same with dashes (hidden)."""

COMMANDS: tuple[click.Command, ...] = (*GROUPS.values(), *ALIASES)
"""The commands to register on the top-level ``cli``: the groups, then the aliases."""
