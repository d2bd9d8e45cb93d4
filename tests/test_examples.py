"""The examples run as their docstrings say: under uvicorn, against the fake, end to end."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tencent_chat_robots.testing import FakeTencentChat, StoredGroupMessage, StoredMessage

from ._echo_users import GROUP, ROBOT, TOKEN, assert_answered_once_as_the_robot, users_talk
from ._servers import fake_in_thread

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """An example app under uvicorn in a process of its own."""

    def __init__(self, module: str, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", module, "--port", str(self.port), "--no-access-log"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the service exited: {self.process.stdout.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling a process's port: there is no event to wait on
        raise AssertionError("the service did not start within 30 s")

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as a deploy sends; the exit code and everything it printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=30)
        return self.process.returncode, output


@pytest.fixture
def served_fake() -> Iterator[tuple[FakeTencentChat, str]]:
    """The fake on a loopback port, in a thread of its own (the test's loop stays free)."""
    fake = FakeTencentChat()
    fake.create_robot(ROBOT)
    with fake_in_thread(fake) as base_url:
        yield fake, base_url


def test_echo_bot_answers_users_as_the_robot_and_stops_cleanly(
    served_fake: tuple[FakeTencentChat, str],
) -> None:
    fake, base_url = served_fake
    service = Service(
        "examples.echo_bot:app",
        {
            "TENCENT_CHAT_SDKAPPID": str(fake.sdkappid),
            "TENCENT_CHAT_SECRET_KEY": fake.secret_key,
            "TENCENT_CHAT_ADMIN": fake.admin,
            "TENCENT_CHAT_BASE_URL": base_url,
            "TENCENT_CHAT_CALLBACK_TOKEN": TOKEN,
        },
    )
    try:
        service.wait_ready("/healthz")
        fake.set_callback(service.url + "/tencent/callback", token=TOKEN)
        fake.create_group(GROUP, "Public", members=[ROBOT])

        deliveries, stale = anyio.run(users_talk, fake)
    finally:
        code, output = service.stop()

    # Acknowledged at once, each time, with Tencent's success answer.
    assert [d.answer for d in deliveries] == [
        {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
    ] * 3
    assert_answered_once_as_the_robot(fake, deliveries, stale)
    # SIGTERM: the lifespan closed the receiver and the client. (uvicorn re-raises the
    # signal once it has shut down, as newer versions do, or exits 0.)
    assert code in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "Traceback" not in output
    assert TOKEN not in output
    assert fake.secret_key not in output


def _answer(prompt: str) -> str:
    """The streaming example's stand-in model's whole answer (its docstring's promise)."""
    return f"You asked: {prompt!r}. Here is an answer, written one word at a time. "


def test_streaming_bot_streams_its_answers_and_finishes_them_when_stopped(
    served_fake: tuple[FakeTencentChat, str],
) -> None:
    fake, base_url = served_fake
    service = Service(
        "examples.streaming_bot:app",
        {
            "TENCENT_CHAT_SDKAPPID": str(fake.sdkappid),
            "TENCENT_CHAT_SECRET_KEY": fake.secret_key,
            "TENCENT_CHAT_ADMIN": fake.admin,
            "TENCENT_CHAT_BASE_URL": base_url,
            "TENCENT_CHAT_CALLBACK_TOKEN": TOKEN,
        },
    )

    def answers(user: str) -> list[StoredMessage]:
        return [m for m in fake.transcript(user, ROBOT) if m.sender == ROBOT]

    def group_answers() -> list[StoredGroupMessage]:
        return [m for m in fake.group_messages(GROUP) if m.sender == ROBOT]

    try:
        service.wait_ready("/healthz")
        fake.set_callback(service.url + "/tencent/callback", token=TOKEN)
        fake.create_group(GROUP, "Public", members=[ROBOT])

        async def talk() -> None:
            await fake.user_sends("alice", ROBOT, "what is a stream?")
            await fake.user_mentions(GROUP, "bob", [ROBOT], "and in a group?")
            with anyio.fail_after(15):
                await fake.wait_until(
                    lambda: (
                        [m.stream for m in answers("alice")] == ["finished"]
                        and [m.text.endswith("at a time. ") for m in group_answers()] == [True]
                    )
                )
            # A deploy stops the service while the robot is answering carol.
            await fake.user_sends("carol", ROBOT, "and when you stop?")
            with anyio.fail_after(10):
                await fake.wait_until(lambda: bool(answers("carol")))

        anyio.run(talk)
        (carol,) = answers("carol")
        assert carol.stream == "open"  # still being written when the signal goes
    finally:
        code, output = service.stop()

    (alice,) = answers("alice")
    assert alice.text == _answer("what is a stream?")
    # It grew as it was written: several versions, each extending the one before.
    texts = alice.texts
    assert len(texts) >= 2
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))
    (group,) = group_answers()
    assert group.text.startswith("You asked: ")
    assert group.modified >= 1  # sent, then replaced with the text so far
    # Stopped mid-answer: the lifespan let the answer finish before closing.
    (carol,) = answers("carol")
    assert (carol.stream, carol.text) == ("finished", _answer("and when you stop?"))
    assert code in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "Traceback" not in output
    assert TOKEN not in output
    assert fake.secret_key not in output
