"""Sentry, initialised with its defaults, and the receiver: the token never reaches it
(findings: a failed construction's frame held the token in clear before any scrubber was
installed), and each handler failure arrives with its own stack (finding: all were one
stackless issue, the traceback pasted into the message)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from tencent_chat_robots.callbacks import C2CMessage, RobotCallbacks

from ._helpers import SDKAPPID, TOKEN, Clock, c2c

DSN = "http://public@127.0.0.1:9/1"  # never dialled: the transport keeps the envelopes


class Captured(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def text(self) -> str:
        return b"".join(envelope.serialize() for envelope in self.envelopes).decode()

    def events(self) -> list[Any]:
        return [e for env in self.envelopes if (e := env.get_event()) is not None]


@pytest.fixture
def start_sentry() -> Iterator[Callable[[], Captured]]:
    def start() -> Captured:
        transport = Captured()
        sentry_sdk.init(dsn=DSN, transport=transport)  # default integrations: logging too
        return transport

    with sentry_sdk.isolation_scope():
        yield start
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


@pytest.mark.parametrize("arguments", ["1400000000, max_handlers=0", "0"])
def test_a_failed_construction_reported_to_sentry_shows_no_token(
    tmp_path: Path, arguments: str
) -> None:
    # A fresh interpreter, where nothing else has installed the SDK's scrubber yet; an
    # app's own file, whose lines and variables Sentry sends with each frame.
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            f"""
            import sentry_sdk
            from sentry_sdk.transport import Transport

            class Keep(Transport):
                def __init__(self):
                    super().__init__()
                    self.envelopes = []

                def capture_envelope(self, envelope):
                    self.envelopes.append(envelope)

            keep = Keep()
            sentry_sdk.init(dsn={DSN!r}, transport=keep)  # include_local_variables: on
            from tencent_chat_robots.callbacks import RobotCallbacks

            CALLBACK_TOKEN = {TOKEN!r}
            try:
                RobotCallbacks({arguments}, token=CALLBACK_TOKEN)  # a typo
            except Exception:
                sentry_sdk.capture_exception()
            sentry_sdk.flush()
            text = b"".join(envelope.serialize() for envelope in keep.envelopes).decode()
            print(len(keep.envelopes), '"vars"' in text, "ValidationError" in text)
            print(CALLBACK_TOKEN in text, CALLBACK_TOKEN[:16] in text)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(app)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    # One event, with the frames' local variables and the error, and without the token.
    assert done.stdout.split() == ["1", "True", "True", "False", "False"]


async def test_each_handler_failure_reaches_sentry_with_its_stack_and_no_token(
    start_sentry: Callable[[], Captured],
) -> None:
    captured = start_sentry()
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=Clock())

    @bot.on_c2c_message
    async def broken(event: C2CMessage) -> None:
        if event.text == "profile":
            raise KeyError(f"user-profile (token {TOKEN})")
        raise ZeroDivisionError("division by zero in pricing")

    await bot.feed(c2c("k1", text="profile"))
    await bot.feed(c2c("k2", text="price"))
    sentry_sdk.flush()
    events = captured.events()
    assert len(events) == 2
    # One constant message per command: Sentry groups by each exception's own stack.
    assert {event["logentry"]["message"] for event in events} == {"the %s handler failed"}
    assert [event["logentry"]["params"] for event in events] == [["Bot.OnC2CMessage"]] * 2
    types = [event["exception"]["values"][-1]["type"] for event in events]
    assert types == ["KeyError", "ZeroDivisionError"]
    for event in events:
        frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
        assert frames[-1]["function"] == "broken"
    assert TOKEN not in captured.text()
    assert "[Filtered]" in captured.text()  # the token in the KeyError's message
