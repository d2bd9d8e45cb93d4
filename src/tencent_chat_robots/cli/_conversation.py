"""The demo's conversation phase: simulated users talk to the robots, the robots answer.

The fake delivers each user's message to a :class:`RobotCallbacks` receiver as Chat
would (signed ``Bot.OnC2CMessage`` / ``Bot.OnGroupMessage``); its handlers answer as the
robot through the client, first with a placeholder and then by editing it into the
answer (``send_*`` then ``modify_*``). Some messages are delivered twice, one with a stale
``RequestTime``, and one robot messages another (which Chat reports as a message to a
robot: the loop guard must ignore it). The phase checks that every message accepted got
exactly one answer, and that nothing else did.
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
from ..callbacks import C2CMessage, GroupMention, RobotCallbacks
from ..testing import FakeTencentChat, percentile

__all__ = ["Conversation", "converse"]

T = TypeVar("T")

TOKEN = "demo-callback-token"
PLACEHOLDER = "…"
TWICE_EVERY = 7  # every 7th message is delivered twice, as a console retry would
GROUP_MENTIONS = 5  # per group


def answer_to(text: str) -> str:
    return f"you said: {text}"


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

    @property
    def ok(self) -> bool:
        return not self.wrong and self.answers == self.messages

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "messages": self.messages,
            "deliveries": self.deliveries,
            "answers": self.answers,
            "wrong": self.wrong,
            "answer_ms": self._latency_ms(),
            "receiver": self.stats,
            "ok": self.ok,
        }

    def _latency_ms(self) -> dict[str, float]:
        ordered = sorted(self.latencies)
        return {
            "p50": round(percentile(ordered, 0.5) * 1000, 1),
            "p99": round(percentile(ordered, 0.99) * 1000, 1),
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
        latency = self._latency_ms()
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
        ]
        for what, n in rows:
            table.add_row(what, str(n))
        return table


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

    @bot.on_c2c_message
    async def answer(event: C2CMessage) -> None:
        sent = await made(Call.send_c2c_message(event.robot, event.sender, PLACEHOLDER))
        await made(
            Call.modify_c2c_message(
                event.robot, event.sender, sent.msg_key, body=answer_to(event.text)
            )
        )
        report.latencies.append(time.perf_counter() - asked[event.text])
        on_answer(task)

    @bot.on_group_mention
    async def mentioned(event: GroupMention) -> None:
        robot = event.robots[0]
        sent = await made(Call.send_group_message(event.group_id, PLACEHOLDER, from_account=robot))
        question = event.text.split(" ", len(event.robots))[-1]  # after the "@robot" mentions
        await made(
            Call.modify_group_message(event.group_id, sent.msg_seq, body=answer_to(question))
        )
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
    # Chat reports a robot's message to another robot as a message to a robot.
    await made(Call.send_c2c_message(robots[0], robots[1], "hello, fellow robot"))
    stale = int(time.time()) - 3600  # signed, but an hour old: a replay
    await fake.user_sends("user-000", robots[0], "an old message", request_time=stale)
    await fake.wait_deliveries()
    await bot.join()
    await bot.aclose()
    report.deliveries = len(fake.callback_deliveries)
    report.stats = dict(bot.stats)
    report.messages = users * messages_per_user + min(users, groups * GROUP_MENTIONS)
    _check(report, fake, robots, users, messages_per_user, group_ids)
    return report


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
            answers = [m.text for m in transcript if m.sender == robot]
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
            if not message.text.startswith(answer_to("group question")):
                report.wrong.append(f"{group}: unexpected {message.text!r}")
    between_robots = fake.transcript(robots[0], robots[1])
    if any(m.sender == robots[1] for m in between_robots):
        report.wrong.append("a robot answered another robot: the loop guard failed")
