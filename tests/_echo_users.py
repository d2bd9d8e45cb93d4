"""The conversation every echo example is tested with, and what the robot must answer.

Alice writes to the robot (the event delivered twice), Bob mentions it in a group, and
Mallory's callback comes with a stale ``RequestTime``.
"""

from __future__ import annotations

import anyio

from tencent_chat_robots.testing import Delivery, FakeTencentChat

TOKEN = "example-callback-token"
ROBOT = "@RBT#echo"
GROUP = "@GRP#chat"


async def users_talk(fake: FakeTencentChat) -> tuple[list[Delivery], list[Delivery]]:
    """Play the conversation; wait for the robot's two answers. Returns the deliveries of
    Alice's and Bob's events, and of Mallory's stale one."""
    deliveries = await fake.user_sends("alice", ROBOT, "hello there", times=2)
    deliveries += await fake.user_mentions(GROUP, "bob", [ROBOT], "hi robot")
    stale = await fake.user_sends("mallory", ROBOT, "old", request_time=1669872112)
    with anyio.fail_after(10):
        await fake.wait_until(
            lambda: (
                len(fake.transcript("alice", ROBOT)) == 2 and len(fake.group_messages(GROUP)) == 2
            )
        )
    return deliveries, stale


def assert_answered_once_as_the_robot(
    fake: FakeTencentChat, deliveries: list[Delivery], stale: list[Delivery]
) -> None:
    """Each event acknowledged, the stale one refused; delivered twice, answered once; the
    group answered as the robot; Mallory not answered."""
    assert [d.status for d in deliveries] == [200, 200, 200]
    assert [d.status for d in stale] == [401]
    assert [(m.sender, m.text) for m in fake.transcript("alice", ROBOT)] == [
        ("alice", "hello there"),
        (ROBOT, "you said: hello there"),
    ]
    assert [(m.sender, m.text) for m in fake.group_messages(GROUP)][1] == (ROBOT, "hello bob")
    assert [m.sender for m in fake.transcript("mallory", ROBOT)] == ["mallory"]
