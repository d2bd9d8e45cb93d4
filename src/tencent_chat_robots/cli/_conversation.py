"""The demo's conversation phase: simulated users talk to the robots, the robots answer.

The fake delivers each user's message to a :class:`RobotCallbacks` receiver as Chat
would (signed ``Bot.OnC2CMessage`` / ``Bot.OnGroupMessage``); its handlers stream their
answers from a fake language model (a word every 10 to 60 ms) as the robot: one-to-one
through ``chat.stream_reply`` (``send_stream_msg``), in groups through
``chat.stream_group_reply`` (``send_group_msg``, then ``modify_group_msg``). Some
messages are delivered twice, one with a stale ``RequestTime``, and one robot messages
another and then corrects it (``sendmsg``, ``modify_c2c_msg``; Chat reports it as a
message to a robot: the loop guard must ignore it). The phase checks that every message
accepted got exactly one answer, whose final text is what the model wrote, and that
nothing else did.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
import attrs
from rich import box
from rich.table import Table

from .._calls import Call
from .._client import TencentChat
from .._endpoints import Endpoint
from .._models import AttemptRecord
from .._stream_reply import StreamReply
from ..callbacks import C2CMessage, GroupMention, RobotCallbacks
from ..testing import FakeTencentChat, Revision, percentile
from ._stats import RunStats

__all__ = ["STREAMED", "Conversation", "converse", "count_streamed"]

T = TypeVar("T")

TOKEN = "demo-callback-token"
TWICE_EVERY = 7  # every 7th message is delivered twice, as a console retry would
GROUP_MENTIONS = 5  # per group
WORD_PAUSE = (0.010, 0.060)  # the fake model's pace: seconds between words


# The APIs the robots' streamed answers use (and nothing else in the demo does).
STREAMED = frozenset(
    {Endpoint.SEND_STREAM_CHUNK, Endpoint.SEND_GROUP_MESSAGE, Endpoint.MODIFY_GROUP_MESSAGE}
)


def count_streamed(stats: RunStats, record: AttemptRecord) -> None:
    """The client's ``on_attempt``: every attempt, and a streamed answer's call counted.

    A stream makes each call once and retries it itself (with the text written since),
    so its calls are counted here, one per answered attempt; one it gives up on ends the
    stream, which the phase reports. The demo's other calls are counted by whoever makes
    them.
    """
    stats.record_attempt(record)
    if record.endpoint in STREAMED and record.error is None:
        stats.record_call(record.endpoint, None)


def answer_to(text: str) -> str:
    """The fake model's whole answer to ``text``."""
    return f"you said: {text}. This answer streams in word by word, as a language model writes it."


async def model(text: str, pauses: random.Random) -> Any:
    """The fake language model: the answer's words, each after a pause."""
    for word in answer_to(text).split(" "):
        await anyio.sleep(pauses.uniform(*WORD_PAUSE))
        yield word + " "


def _spoken(text: str) -> str:
    return text.rstrip(" ")


@attrs.define
class Conversation:
    """What the phase did and saw; ``ok`` when every answer is as it should be."""

    users: int = 0
    messages: int = 0
    deliveries: int = 0
    answers: int = 0
    wrong: list[str] = attrs.field(factory=list)
    latencies: list[float] = attrs.field(factory=list)
    stats: dict[str, int] = attrs.field(factory=dict)
    excerpt: list[tuple[str, str]] = attrs.field(factory=list)
    # Each streamed answer: when its first text was written, the stream, and where it
    # went (robot and user, or the group).
    streams: list[tuple[float, StreamReply, tuple[str, str]]] = attrs.field(factory=list)
    # Per stream, as the server stored it: the calls, the most in any second, the time
    # from the first write to the first text stored, whether the final text is the written.
    stream_calls: list[int] = attrs.field(factory=list)
    stream_peaks: list[int] = attrs.field(factory=list)
    first_text: list[float] = attrs.field(factory=list)
    texts_equal: int = 0

    @property
    def ok(self) -> bool:
        return (
            not self.wrong
            and self.answers == self.messages
            and self.texts_equal == len(self.stream_calls)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "messages": self.messages,
            "deliveries": self.deliveries,
            "answers": self.answers,
            "wrong": self.wrong,
            "answer_ms": _ms(self.latencies),
            "receiver": self.stats,
            "streams": {
                "count": len(self.stream_calls),
                "calls_per_stream": _spread(self.stream_calls),
                "max_calls_in_a_second": max(self.stream_peaks, default=0),
                "first_text_ms": _ms(self.first_text),
                "final_text_as_written": self.texts_equal,
            },
            "ok": self.ok,
        }

    def table(self) -> Table:
        table = Table(
            title="Conversation",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            padding=0,
            show_edge=False,
            show_header=False,
        )
        table.add_column("what")
        table.add_column("n", justify="right")
        latency = _ms(self.latencies)
        first = _ms(self.first_text)
        calls = _spread(self.stream_calls)
        rows = [
            ("users", self.users),
            ("messages to robots (users, groups)", self.messages),
            ("callbacks delivered", self.deliveries),
            ("handled", self.stats.get("handled", 0)),
            ("redeliveries ignored (duplicate)", self.stats.get("duplicate", 0)),
            ("robot-to-robot ignored (loop guard)", self.stats.get("looped", 0)),
            ("refused (stale RequestTime)", self.stats.get("refused:request_time", 0)),
            ("answers in the transcripts", self.answers),
            ("message to answer p50 / p99 (ms)", f"{latency['p50']:.1f} / {latency['p99']:.1f}"),
            ("answers streamed", len(self.stream_calls)),
            ("calls per stream mean / max", f"{calls['mean']:.1f} / {calls['max']}"),
            ("most calls in any second, any stream", max(self.stream_peaks, default=0)),
            (
                "first write to first text p50 / p99 (ms)",
                f"{first['p50']:.1f} / {first['p99']:.1f}",
            ),
            ("final text as written", f"{self.texts_equal} of {len(self.stream_calls)}"),
        ]
        for what, n in rows:
            table.add_row(what, str(n))
        return table


def _ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50": round(percentile(ordered, 0.5) * 1000, 1),
        "p99": round(percentile(ordered, 0.99) * 1000, 1),
    }


def _spread(counts: list[int]) -> dict[str, float]:
    mean = sum(counts) / len(counts) if counts else 0.0
    return {"mean": round(mean, 2), "max": max(counts, default=0)}


def _most_in_a_second(times: list[float]) -> int:
    """The most of ``times`` in any half-open second."""
    ordered, best, start = sorted(times), 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def converse(
    chat: TencentChat,
    fake: FakeTencentChat,
    robots: Sequence[str],
    *,
    users: int,
    messages_per_user: int = 3,
    groups: int = 4,
    on_answer: Callable[[Any], object] = lambda _: None,
    task: Any = None,
    on_call: Callable[[str, BaseException | None], object] = lambda *_: None,
    seed: int = 7,
) -> Conversation:
    """Run the conversation phase (the robots exist on ``fake``); see the module docstring.

    ``on_answer(task)`` is called as each answer is complete (a progress bar's advance),
    ``on_call(endpoint, error)`` as each call of the client ends. Users pause between
    their messages (0.2 to 1 s, drawn from ``seed``), as people do: 40 users then send
    about 70 messages a second, well under the 190 answers a second the pace allows.
    """
    pauses = random.Random(seed)

    async def made(call: Call[T]) -> T:
        try:
            result = await chat.call(call)
        except BaseException as err:
            on_call(call.endpoint, err)
            raise
        on_call(call.endpoint, None)
        return result

    report = Conversation(users=users)
    bot = RobotCallbacks(sdkappid=fake.sdkappid, token=TOKEN, max_handlers=500)
    asked: dict[str, float] = {}  # a message's text: when the user sent it

    async def stream(reply: StreamReply, text: str, where: tuple[str, str]) -> None:
        async with reply:
            async for word in model(text, pauses):
                if not reply.text:
                    report.streams.append((time.time(), reply, where))
                await reply.write(word)

    @bot.on_c2c_message
    async def answer(event: C2CMessage) -> None:
        reply = chat.stream_reply(event.robot, event.sender)
        await stream(reply, event.text, (event.robot, event.sender))
        report.latencies.append(time.perf_counter() - asked[event.text])
        on_answer(task)

    @bot.on_group_mention
    async def mentioned(event: GroupMention) -> None:
        robot = event.robots[0]
        question = event.text.split(" ", len(event.robots))[-1]  # after the "@robot" mentions
        reply = chat.stream_group_reply(event.group_id, from_account=robot)
        await stream(reply, question, (event.group_id, ""))
        report.latencies.append(time.perf_counter() - asked[question])
        on_answer(task)

    fake.set_callback(bot, token=TOKEN)
    group_ids = [f"demo-group-{k}" for k in range(groups)]
    for k, group in enumerate(group_ids):
        fake.create_group(group, "Public", members=[robots[k % len(robots)]])

    async def user(u: int) -> None:
        name = f"user-{u:03d}"
        for m in range(messages_per_user):
            text = f"question {u}-{m}"
            times = 2 if (u * messages_per_user + m) % TWICE_EVERY == 0 else 1
            robot = robots[(u + m) % len(robots)]
            await anyio.sleep(pauses.uniform(0.2, 1.0))
            asked[text] = time.perf_counter()
            await fake.user_sends(name, robot, text, times=times)
        if u < groups * GROUP_MENTIONS:
            group = group_ids[u % groups]
            text = f"group question {u}"
            asked[text] = time.perf_counter()
            robot = robots[(u % groups) % len(robots)]
            await fake.user_mentions(group, name, [robot], text)

    await asyncio.gather(*(user(u) for u in range(users)))
    # Chat reports a robot's message to another robot as a message to a robot; its
    # correction is no new message.
    note = await made(Call.send_c2c_message(robots[0], robots[1], "hello, fellow robot"))
    await made(
        Call.modify_c2c_message(robots[0], robots[1], note.msg_key, body="hello, fellow robots")
    )
    stale = int(time.time()) - 3600  # signed, but an hour old: a replay
    await fake.user_sends("user-000", robots[0], "an old message", request_time=stale)
    await fake.wait_deliveries()
    await bot.join()
    await bot.aclose()
    report.deliveries = len(fake.callback_deliveries)
    report.stats = dict(bot.stats)
    report.messages = users * messages_per_user + min(users, groups * GROUP_MENTIONS)
    _check(report, fake, robots, users, messages_per_user, group_ids)
    _measure_streams(report, fake)
    return report


def _measure_streams(report: Conversation, fake: FakeTencentChat) -> None:
    """Each stream as the server stored it: its versions' times and its final text."""
    for first_write, reply, where in report.streams:
        revisions = _stored_revisions(fake, reply, where)
        if not revisions:
            report.wrong.append(f"{reply!r}: nothing stored")
            continue
        times = [r.at for r in revisions]
        report.stream_calls.append(len(times))
        report.stream_peaks.append(_most_in_a_second(times))
        report.first_text.append(max(0.0, times[0] - first_write))
        if revisions[-1].text == reply.text and reply.finished:
            report.texts_equal += 1
        else:
            report.wrong.append(f"{reply!r}: stored {revisions[-1].text!r}")


def _stored_revisions(
    fake: FakeTencentChat, reply: StreamReply, where: tuple[str, str]
) -> list[Revision]:
    found: list[Any]
    if reply.msg_seq is not None:
        found = [m for m in fake.group_messages(where[0]) if m.msg_seq == reply.msg_seq]
    else:
        found = [m for m in fake.transcript(*where) if m.msg_key == reply.msg_key]
    return list(found[0].revisions) if found else []


def _check(
    report: Conversation,
    fake: FakeTencentChat,
    robots: Sequence[str],
    users: int,
    messages_per_user: int,
    group_ids: Sequence[str],
) -> None:
    """Count the answers in the fake's records, and every one that should not be."""
    for u in range(users):
        name = f"user-{u:03d}"
        for robot in dict.fromkeys(robots[(u + m) % len(robots)] for m in range(messages_per_user)):
            transcript = fake.transcript(name, robot)
            questions = [m.text for m in transcript if m.sender == name]
            answers = [_spoken(m.text) for m in transcript if m.sender == robot]
            expected = [answer_to(q) for q in questions if q != "an old message"]
            if answers != expected:
                report.wrong.append(f"{name} and {robot}: answers {answers}, expected {expected}")
            report.answers += len(answers)
            if u == 0 and not report.excerpt:
                report.excerpt = [(m.sender, m.text) for m in transcript]
    for group in group_ids:
        for message in fake.group_messages(group):
            if message.mentions:
                continue
            report.answers += 1
            if not message.text.startswith("you said: group question"):
                report.wrong.append(f"{group}: unexpected {message.text!r}")
    between_robots = fake.transcript(robots[0], robots[1])
    if any(m.sender == robots[1] for m in between_robots):
        report.wrong.append("a robot answered another robot: the loop guard failed")
