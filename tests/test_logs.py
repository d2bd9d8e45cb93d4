"""``TENCENT_CHAT_LOG``: the library's own log on stderr, without any logging setup."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import SECRET_KEY

# One call, retried once after an internal error, in a fresh interpreter.
_PROGRAM = f"""
import asyncio
from tencent_chat_robots import RawResponse, TencentChat

ANSWERS = [b'{{"ActionStatus":"FAIL","ErrorCode":70500,"ErrorInfo":"busy"}}',
           b'{{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}}']

class Answering:
    async def post(self, url, content, *, timeout):
        return RawResponse(200, ANSWERS.pop(0))
    async def aclose(self):
        pass

async def main():
    async with TencentChat(1400000000, {SECRET_KEY!r}, transport=Answering()) as chat:
        await chat.delete_robot("@RBT#001")

asyncio.run(main())
"""


def _run(level: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "TENCENT_CHAT_LOG"}
    if level is not None:
        env["TENCENT_CHAT_LOG"] = level
    return subprocess.run(
        [sys.executable, "-c", _PROGRAM], env=env, capture_output=True, text=True, timeout=60
    )


def test_debug_shows_each_attempt_with_its_random_on_stderr() -> None:
    done = _run("debug")
    assert done.returncode == 0, done.stderr
    assert "openim_robot_http_svc/delete_robot attempt 1 (random=" in done.stderr
    assert "openim_robot_http_svc/delete_robot attempt 2 (random=" in done.stderr
    assert "WARNING] retrying openim_robot_http_svc/delete_robot" in done.stderr
    assert SECRET_KEY not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("level", ["info", " INFO "])
def test_info_shows_the_retry_but_not_the_attempts(level: str) -> None:
    done = _run(level)
    assert done.returncode == 0, done.stderr
    assert "WARNING] retrying openim_robot_http_svc/delete_robot" in done.stderr
    assert "attempt 1 (random=" not in done.stderr


@pytest.mark.parametrize("level", [None, "", "loud"])
def test_unset_or_unknown_shows_nothing(level: str | None) -> None:
    done = _run(level)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
