"""Commands for single calls of the robot APIs, and how a row of the endpoint table gets one.

A command's group and verb are its row's ``cli`` (``room add``), given by
:func:`command_for`; the message APIs' commands are in ``_message_commands``, and
``_every_command`` adds each API's hidden alias (its method name) and checks that no
row is without a command.

Output: lines for people on stdout (nothing when a list is empty: a note goes to
stderr); with ``--json``, one JSON object on stdout, ``{"ok": true, ...}``, or on failure
the object of :func:`~._context.failure_document`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click
from rich.text import Text

from .._calls import Call
from .._endpoints import BY_METHOD, EndpointSpec
from .._exceptions import ValidationError
from .._models import ActionResult
from ._context import console, error_console, exit_with, options_of, print_json, run

__all__ = [
    "COMMAND_OF",
    "GROUPS",
    "command_for",
    "group",
    "group_of",
    "live_room",
    "robots",
    "room",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., None])

_PROGRAM = "tencent-chat-robots"


def _check(build: Callable[[], T]) -> T:
    """Apply the SDK's own argument rules before connecting; a broken rule exits 2."""
    try:
        return build()
    except ValidationError as err:
        exit_with(str(err), code=2, error=err)


def _send(ctx: click.Context, call: Call[T]) -> T:
    """Make ``call`` with a client made from the connection options, then close it."""
    # Made before the event loop starts so that bad settings exit 2, not as an API failure.
    chat = options_of(ctx).client()

    async def main() -> T:
        async with chat:
            return await chat.call(call)

    return run(main())


def _report(ctx: click.Context, result: ActionResult, message: Text, **fields: object) -> None:
    """``message`` for people, or ``{"ok": true, ...fields, "request_id": ...}`` with --json."""
    if options_of(ctx).json_output:
        print_json({"ok": True, **fields, "request_id": result.request_id})
    else:
        console.print(message)


def _print_ids(ctx: click.Context, ids: list[str], **fields: object) -> None:
    """Robot UserIDs one per line, or ``{"ok": true, ...fields, "robots": [...]}`` with --json.

    No robots: nothing on stdout (a loop reading it gets no id), a note on stderr.
    """
    if options_of(ctx).json_output:
        print_json({"ok": True, **fields, "robots": ids})
    elif ids:
        for user_id in ids:
            console.print(user_id)
    else:
        error_console.print("no robots", style="dim")


# --- commands named by the endpoint table ------------------------------------------------

GROUPS: dict[str, click.Group] = {}
COMMAND_OF: dict[str, click.Command] = {}
"""Each API's command, by its method name (``add_robot_to_room``: ``room add``)."""


def group_of(method: str) -> Callable[[Callable[[], None]], click.Group]:
    """The command group that ``method``'s row names (its ``cli[0]``); help: the docstring."""

    def make(function: Callable[[], None]) -> click.Group:
        group = click.group(BY_METHOD[method].cli[0])(function)
        GROUPS[str(group.name)] = group
        return group

    return make


def _epilog(spec: EndpointSpec, *, alias: bool) -> str:
    same = " ".join((_PROGRAM, *spec.cli)) if alias else f"{_PROGRAM} {spec.method}"
    return (
        f"The API's {spec.method} ({spec.path}, documented at {spec.documented_rate}"
        f" calls/s). The same command: {same}"
    )


def command_for(method: str, short_help: str | None = None) -> Callable[[F], click.Command]:
    """The command that makes ``method``'s call, named and grouped by its row's ``cli``."""
    spec = BY_METHOD[method]
    group_name, verb = spec.cli

    def make(callback: F) -> click.Command:
        group = GROUPS.get(group_name)
        if group is None:
            raise RuntimeError(f"{method}: its row names the group {group_name!r}, not made")
        epilog = _epilog(spec, alias=False)
        command = click.command(verb, epilog=epilog, short_help=short_help)(callback)
        group.add_command(command)
        COMMAND_OF[method] = command
        return command

    return make


# --- robots -----------------------------------------------------------------------------


@group_of("create_robot")
def robots() -> None:
    """Create, list and delete robot accounts.

    Robot UserIDs start with @RBT# and are at most 32 bytes.
    """


@command_for("get_all_robots")
@click.pass_context
def list_robots(ctx: click.Context) -> None:
    """Print the UserID of every valid robot, one per line (none: nothing)."""
    _print_ids(ctx, _send(ctx, Call.get_all_robots()))


@command_for("create_robot")
@click.argument("user_id")
@click.option("--nick", help="Display name (at most 500 bytes).")
@click.option("--face-url", help="Avatar URL (at most 500 bytes).")
@click.option("--self-signature", help="Status line shown on the profile (at most 500 bytes).")
@click.pass_context
def create_robot(
    ctx: click.Context,
    user_id: str,
    nick: str | None,
    face_url: str | None,
    self_signature: str | None,
) -> None:
    """Create robot USER_ID, or update its profile if it exists.

    USER_ID must start with @RBT# and be at most 32 bytes; each profile field at most
    500 bytes.
    """
    profile = {"nick": nick, "face_url": face_url, "self_signature": self_signature}
    call = _check(lambda: Call.create_robot(user_id, **profile))
    result = _send(ctx, call)
    _report(ctx, result, Text.assemble("created robot ", (user_id, "bold")), user_id=user_id)


@command_for("delete_robot")
@click.argument("user_id")
@click.pass_context
def delete_robot(ctx: click.Context, user_id: str) -> None:
    """Delete robot USER_ID.

    Its UserID stays taken: creating it again brings the robot back.
    """
    call = _check(lambda: Call.delete_robot(user_id))
    result = _send(ctx, call)
    _report(ctx, result, Text.assemble("deleted robot ", (user_id, "bold")), user_id=user_id)


# --- room -------------------------------------------------------------------------------


@group_of("add_robot_to_room")
def room() -> None:
    """Add robots to Room Engine rooms or take them out.

    ROBOT_ID is a robot's UserID: it starts with @RBT# and is at most 32 bytes.
    """


@command_for("add_robot_to_room")
@click.argument("room_id")
@click.argument("robot_id")
@click.pass_context
def room_add(ctx: click.Context, room_id: str, robot_id: str) -> None:
    """Add robot ROBOT_ID to room ROOM_ID (a no-op if it is already in)."""
    call = _check(lambda: Call.add_robot_to_room(room_id, robot_id))
    result = _send(ctx, call)
    _report(
        ctx,
        result,
        Text.assemble("added ", (robot_id, "bold"), " to room ", (room_id, "bold")),
        room_id=room_id,
        robot_id=robot_id,
    )


@command_for("remove_robot_from_room")
@click.argument("room_id")
@click.argument("robot_id")
@click.pass_context
def room_remove(ctx: click.Context, room_id: str, robot_id: str) -> None:
    """Take robot ROBOT_ID out of room ROOM_ID."""
    call = _check(lambda: Call.remove_robot_from_room(room_id, robot_id))
    result = _send(ctx, call)
    _report(
        ctx,
        result,
        Text.assemble("removed ", (robot_id, "bold"), " from room ", (room_id, "bold")),
        room_id=room_id,
        robot_id=robot_id,
    )


# --- live groups ------------------------------------------------------------------------


def _names(ids: list[str]) -> Text:
    return Text(", ").join(Text(i, style="bold") for i in ids)


@group_of("add_robots_to_live_group")
def group() -> None:
    """Pin robots to live groups (AVChatRoom) or unpin them.

    A pinned robot shows in the group's online member list without joining it. Each
    ROBOT_ID starts with @RBT# and is at most 32 bytes.
    """


@command_for("add_robots_to_live_group")
@click.argument("group_id")
@click.argument("robot_ids", metavar="ROBOT_ID...", nargs=-1, required=True)
@click.pass_context
def group_add(ctx: click.Context, group_id: str, robot_ids: tuple[str, ...]) -> None:
    """Pin robots ROBOT_ID... to live group GROUP_ID.

    One call for all of them: if one is refused, none is pinned.
    """
    ids = list(robot_ids)
    call = _check(lambda: Call.add_robots_to_live_group(group_id, ids))
    result = _send(ctx, call)
    _report(
        ctx,
        result,
        Text.assemble("added ", _names(ids), " to live group ", (group_id, "bold")),
        group_id=group_id,
        robot_ids=ids,
    )


@command_for("remove_robots_from_live_group")
@click.argument("group_id")
@click.argument("robot_ids", metavar="ROBOT_ID...", nargs=-1, required=True)
@click.pass_context
def group_remove(ctx: click.Context, group_id: str, robot_ids: tuple[str, ...]) -> None:
    """Unpin robots ROBOT_ID... from live group GROUP_ID.

    One call for all of them: if one is refused, none is unpinned.
    """
    ids = list(robot_ids)
    call = _check(lambda: Call.remove_robots_from_live_group(group_id, ids))
    result = _send(ctx, call)
    _report(
        ctx,
        result,
        Text.assemble("removed ", _names(ids), " from live group ", (group_id, "bold")),
        group_id=group_id,
        robot_ids=ids,
    )


# --- live rooms -------------------------------------------------------------------------


@group_of("add_robots_to_live_room")
def live_room() -> None:
    """Put robots into TUILiveKit live rooms, take them out, list them.

    A live room holds at most three robots; ROOM_ID is at most 48 bytes; each ROBOT_ID
    starts with @RBT# and is at most 32 bytes.
    """


@command_for("add_robots_to_live_room", short_help="Put robots (at most three) into a live room.")
@click.argument("room_id")
@click.argument("robot_ids", metavar="ROBOT_ID...", nargs=-1, required=True)
@click.pass_context
def live_room_add(ctx: click.Context, room_id: str, robot_ids: tuple[str, ...]) -> None:
    """Put robots ROBOT_ID... (at most three) into live room ROOM_ID.

    One call for all of them: if one is refused, none is added. Robots already in the
    room may be named again; the server refuses a call that would leave more than three.
    """
    ids = list(robot_ids)
    call = _check(lambda: Call.add_robots_to_live_room(room_id, ids))
    result = _send(ctx, call)
    _report(
        ctx,
        result,
        Text.assemble("added ", _names(ids), " to live room ", (room_id, "bold")),
        room_id=room_id,
        robot_ids=ids,
    )


@command_for("remove_robots_from_live_room", short_help="Take robots out of a live room.")
@click.argument("room_id")
@click.argument("robot_ids", metavar="ROBOT_ID...", nargs=-1, required=True)
@click.pass_context
def live_room_remove(ctx: click.Context, room_id: str, robot_ids: tuple[str, ...]) -> None:
    """Take robots ROBOT_ID... out of live room ROOM_ID.

    One call for all of them: if one is refused, none is removed.
    """
    ids = list(robot_ids)
    call = _check(lambda: Call.remove_robots_from_live_room(room_id, ids))
    result = _send(ctx, call)
    _report(
        ctx,
        result,
        Text.assemble("removed ", _names(ids), " from live room ", (room_id, "bold")),
        room_id=room_id,
        robot_ids=ids,
    )


@command_for("get_live_room_robots", short_help="Print the robots in a live room.")
@click.argument("room_id")
@click.pass_context
def live_room_list(ctx: click.Context, room_id: str) -> None:
    """Print the UserID of every robot in live room ROOM_ID, one per line (none: nothing)."""
    call = _check(lambda: Call.get_live_room_robots(room_id))
    _print_ids(ctx, _send(ctx, call), room_id=room_id)
