"""Commands for the message APIs: send or change a message as a robot (one-to-one, groups)."""

from __future__ import annotations

import click
from rich.text import Text

from .._calls import Call
from ._commands import _check, _report, _send, command_for, group_of
from ._context import console, options_of, print_json

__all__ = ["group_message", "message"]


def _report_sent(ctx: click.Context, message: Text, **fields: object) -> None:
    if options_of(ctx).json_output:
        print_json({"ok": True, **fields})
    else:
        console.print(message)


@group_of("send_c2c_message")
def message() -> None:
    """Send one-to-one messages as a robot, or change one sent before."""


@command_for("send_c2c_message", short_help="Send a one-to-one text message as FROM.")
@click.argument("from_account", metavar="FROM")
@click.argument("to_account", metavar="TO")
@click.argument("text")
@click.pass_context
def message_send(ctx: click.Context, from_account: str, to_account: str, text: str) -> None:
    """Send TEXT from FROM (a robot, say) to TO; prints the message's MsgKey."""
    call = _check(lambda: Call.send_c2c_message(from_account, to_account, text))
    sent = _send(ctx, call)
    _report_sent(
        ctx,
        Text.assemble("sent ", (sent.msg_key, "bold"), " to ", (to_account, "bold")),
        msg_key=sent.msg_key,
        msg_time=sent.msg_time.isoformat(),
        random=sent.random,
    )


@command_for("modify_c2c_message", short_help="Replace the text of a one-to-one message.")
@click.argument("from_account", metavar="FROM")
@click.argument("to_account", metavar="TO")
@click.argument("msg_key")
@click.argument("text")
@click.pass_context
def message_modify(
    ctx: click.Context, from_account: str, to_account: str, msg_key: str, text: str
) -> None:
    """Replace the body of message MSG_KEY, sent from FROM to TO, with TEXT."""
    call = _check(lambda: Call.modify_c2c_message(from_account, to_account, msg_key, body=text))
    result = _send(ctx, call)
    _report(ctx, result, Text.assemble("modified ", (msg_key, "bold")), msg_key=msg_key)


@command_for("send_stream_chunk", short_help="Send one piece of a streamed reply as FROM.")
@click.argument("from_account", metavar="FROM")
@click.argument("to_account", metavar="TO")
@click.argument("chunk")
@click.option("--msg-key", help="The stream's MsgKey (from its first piece); none: a new stream.")
@click.option("--finish", is_flag=True, help="End the stream with this piece.")
@click.pass_context
def message_stream(
    ctx: click.Context,
    from_account: str,
    to_account: str,
    chunk: str,
    msg_key: str | None,
    finish: bool,
) -> None:
    """Append CHUNK to a reply streamed from FROM to TO; prints the stream's MsgKey."""
    call = _check(
        lambda: Call.send_stream_chunk(
            from_account, to_account, chunk, msg_key=msg_key, finish=finish
        )
    )
    key = _send(ctx, call)
    _report_sent(
        ctx,
        Text.assemble(
            "finished " if finish else "streamed to ",
            (key, "bold"),
            " for ",
            (to_account, "bold"),
        ),
        msg_key=key,
        finished=finish,
    )


@group_of("send_group_message")
def group_message() -> None:
    """Send messages to groups as a robot, or change one sent before (not in live groups)."""


@command_for("send_group_message", short_help="Send a text message to a group.")
@click.argument("group_id")
@click.argument("text")
@click.option("--from", "from_account", metavar="ACCOUNT", help="The sender (a robot).")
@click.pass_context
def group_message_send(
    ctx: click.Context, group_id: str, text: str, from_account: str | None
) -> None:
    """Send TEXT to group GROUP_ID; prints the message's MsgSeq."""
    call = _check(lambda: Call.send_group_message(group_id, text, from_account=from_account))
    sent = _send(ctx, call)
    _report_sent(
        ctx,
        Text.assemble("sent message ", (str(sent.msg_seq), "bold"), " to ", (group_id, "bold")),
        group_id=group_id,
        msg_seq=sent.msg_seq,
        msg_time=sent.msg_time.isoformat(),
        random=sent.random,
    )


@command_for("modify_group_message", short_help="Replace the text of a group message.")
@click.argument("group_id")
@click.argument("msg_seq", type=click.IntRange(0, 0xFFFFFFFF))
@click.argument("text")
@click.pass_context
def group_message_modify(ctx: click.Context, group_id: str, msg_seq: int, text: str) -> None:
    """Replace the body of message MSG_SEQ of group GROUP_ID with TEXT."""
    call = _check(lambda: Call.modify_group_message(group_id, msg_seq, body=text))
    result = _send(ctx, call)
    _report(
        ctx, result, Text.assemble("modified message ", (str(msg_seq), "bold")), msg_seq=msg_seq
    )
