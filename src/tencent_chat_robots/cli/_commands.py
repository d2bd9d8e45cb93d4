"""Commands for single calls: `robots list|create|delete`, `room add|remove`,
`group add|remove`, `live-room add|remove|list`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from rich.text import Text

from .._calls import Call
from .._client import TencentChat
from .._exceptions import ValidationError
from .._models import (
    ActionResult,
    CreateRobotRequest,
    DeleteRobotRequest,
    LiveGroupRobotsRequest,
    RoomRobotRequest,
)
from ._context import console, exit_with, options_of, print_json, run

__all__ = ["COMMANDS", "group", "live_room", "robots", "room"]

T = TypeVar("T")


def _check(build: Callable[[], T]) -> T:
    """Apply the SDK's own argument rules before connecting; a broken rule exits 2."""
    try:
        return build()
    except ValidationError as err:
        exit_with(str(err), code=2)


def _call(ctx: click.Context, action: Callable[[TencentChat], Awaitable[T]]) -> T:
    """Run ``action`` with a client made from the global options, then close it."""
    # Made before the event loop starts so that bad settings exit 2, not as an API failure.
    chat = options_of(ctx).client()

    async def main() -> T:
        async with chat:
            return await action(chat)

    return run(main())


def _report(ctx: click.Context, result: ActionResult, message: Text, **fields: object) -> None:
    """``message`` for people, or ``{"ok": true, ...fields, "request_id": ...}`` with --json."""
    if options_of(ctx).json_output:
        print_json({"ok": True, **fields, "request_id": result.request_id})
    else:
        console.print(message)


def _print_ids(ctx: click.Context, ids: list[str]) -> None:
    """Robot UserIDs one per line (or "no robots"), or a JSON list with --json."""
    if options_of(ctx).json_output:
        print_json(ids)
    elif ids:
        for user_id in ids:
            console.print(user_id)
    else:
        console.print("no robots", style="dim")


# --- robots -----------------------------------------------------------------------------


@click.group()
def robots() -> None:
    """Create, list and delete robot accounts.

    Robot UserIDs start with @RBT# and are at most 32 bytes.
    """


@robots.command("list")
@click.pass_context
def list_robots(ctx: click.Context) -> None:
    """Print the UserID of every valid robot, one per line."""
    _print_ids(ctx, _call(ctx, lambda chat: chat.get_all_robots()))


@robots.command("create")
@click.argument("user_id")
@click.option("--nick", help="Display name.")
@click.option("--face-url", help="Avatar URL.")
@click.option("--self-signature", help="Status line shown on the profile.")
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
    _check(lambda: CreateRobotRequest(user_id, **profile))
    result = _call(ctx, lambda chat: chat.create_robot(user_id, **profile))
    _report(ctx, result, Text.assemble("created robot ", (user_id, "bold")), user_id=user_id)


@robots.command("delete")
@click.argument("user_id")
@click.pass_context
def delete_robot(ctx: click.Context, user_id: str) -> None:
    """Delete robot USER_ID.

    Its UserID stays taken: creating it again brings the robot back.
    """
    _check(lambda: DeleteRobotRequest(user_id))
    result = _call(ctx, lambda chat: chat.delete_robot(user_id))
    _report(ctx, result, Text.assemble("deleted robot ", (user_id, "bold")), user_id=user_id)


# --- room -------------------------------------------------------------------------------


@click.group()
def room() -> None:
    """Add robots to Room Engine rooms or take them out."""


@room.command("add")
@click.argument("room_id")
@click.argument("robot_id")
@click.pass_context
def room_add(ctx: click.Context, room_id: str, robot_id: str) -> None:
    """Add robot ROBOT_ID to room ROOM_ID (a no-op if it is already in)."""
    _check(lambda: RoomRobotRequest(room_id, robot_id))
    result = _call(ctx, lambda chat: chat.add_robot_to_room(room_id, robot_id))
    _report(
        ctx,
        result,
        Text.assemble("added ", (robot_id, "bold"), " to room ", (room_id, "bold")),
        room_id=room_id,
        robot_id=robot_id,
    )


@room.command("remove")
@click.argument("room_id")
@click.argument("robot_id")
@click.pass_context
def room_remove(ctx: click.Context, room_id: str, robot_id: str) -> None:
    """Take robot ROBOT_ID out of room ROOM_ID."""
    _check(lambda: RoomRobotRequest(room_id, robot_id))
    result = _call(ctx, lambda chat: chat.remove_robot_from_room(room_id, robot_id))
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


@click.group()
def group() -> None:
    """Pin robots to live groups (AVChatRoom) or unpin them.

    A pinned robot shows in the group's online member list without joining it.
    """


@group.command("add")
@click.argument("group_id")
@click.argument("robot_ids", metavar="ROBOT_ID...", nargs=-1, required=True)
@click.pass_context
def group_add(ctx: click.Context, group_id: str, robot_ids: tuple[str, ...]) -> None:
    """Pin robots ROBOT_ID... to live group GROUP_ID.

    One call for all of them: if one is refused, none is pinned.
    """
    ids = list(robot_ids)
    _check(lambda: LiveGroupRobotsRequest(group_id, ids))
    result = _call(ctx, lambda chat: chat.add_robots_to_live_group(group_id, ids))
    _report(
        ctx,
        result,
        Text.assemble("added ", _names(ids), " to live group ", (group_id, "bold")),
        group_id=group_id,
        robot_ids=ids,
    )


@group.command("remove")
@click.argument("group_id")
@click.argument("robot_ids", metavar="ROBOT_ID...", nargs=-1, required=True)
@click.pass_context
def group_remove(ctx: click.Context, group_id: str, robot_ids: tuple[str, ...]) -> None:
    """Unpin robots ROBOT_ID... from live group GROUP_ID.

    One call for all of them: if one is refused, none is unpinned.
    """
    ids = list(robot_ids)
    _check(lambda: LiveGroupRobotsRequest(group_id, ids))
    result = _call(ctx, lambda chat: chat.remove_robots_from_live_group(group_id, ids))
    _report(
        ctx,
        result,
        Text.assemble("removed ", _names(ids), " from live group ", (group_id, "bold")),
        group_id=group_id,
        robot_ids=ids,
    )


# --- live rooms -------------------------------------------------------------------------


@click.group("live-room")
def live_room() -> None:
    """Put robots into TUILiveKit live rooms, take them out, list them.

    A live room holds at most three robots; ROOM_ID is at most 48 bytes.
    """


@live_room.command("add", short_help="Put robots (at most three) into a live room.")
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
    result = _call(ctx, lambda chat: chat.call(call))
    _report(
        ctx,
        result,
        Text.assemble("added ", _names(ids), " to live room ", (room_id, "bold")),
        room_id=room_id,
        robot_ids=ids,
    )


@live_room.command("remove", short_help="Take robots out of a live room.")
@click.argument("room_id")
@click.argument("robot_ids", metavar="ROBOT_ID...", nargs=-1, required=True)
@click.pass_context
def live_room_remove(ctx: click.Context, room_id: str, robot_ids: tuple[str, ...]) -> None:
    """Take robots ROBOT_ID... out of live room ROOM_ID.

    One call for all of them: if one is refused, none is removed.
    """
    ids = list(robot_ids)
    call = _check(lambda: Call.remove_robots_from_live_room(room_id, ids))
    result = _call(ctx, lambda chat: chat.call(call))
    _report(
        ctx,
        result,
        Text.assemble("removed ", _names(ids), " from live room ", (room_id, "bold")),
        room_id=room_id,
        robot_ids=ids,
    )


@live_room.command("list", short_help="Print the robots in a live room.")
@click.argument("room_id")
@click.pass_context
def live_room_list(ctx: click.Context, room_id: str) -> None:
    """Print the UserID of every robot in live room ROOM_ID, one per line."""
    call = _check(lambda: Call.get_live_room_robots(room_id))
    _print_ids(ctx, _call(ctx, lambda chat: chat.call(call)))


COMMANDS = (robots, room, group, live_room)
"""The groups to register on the top-level ``cli``."""
