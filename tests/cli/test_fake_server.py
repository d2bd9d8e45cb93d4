"""``fake-server``: the app it accepts, what it prints, its options, how it stops.

The process tests start the real command and synchronise on the first line of its
stdout (the base URL, or the JSON object), which it prints once it listens.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import click
import httpx
import pytest
from click.testing import CliRunner

from tencent_chat_robots import Endpoint, TencentChat
from tencent_chat_robots.cli import _fake_server
from tencent_chat_robots.cli._main import cli

from ._process import ENTRY, TIMEOUT
from ._spies import spy_fakes


class FakeServerProcess:
    """``tencent-chat-robots ARGS`` in a process; ``first_line`` waits for stdout's first."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", ENTRY, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env={**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})},
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read_first_line, daemon=True)
        self._reader.start()

    def _read_first_line(self) -> None:
        assert self.process.stdout is not None
        self._lines.put(self.process.stdout.readline())

    def first_line(self) -> str:
        line = self._lines.get(timeout=TIMEOUT)
        assert line, f"no line on stdout; stderr:\n{self.finish()[2]}"
        return line

    def finish(self) -> tuple[int, str, str]:
        """Exit code, the rest of stdout, and stderr, once it has ended."""
        self._reader.join(timeout=TIMEOUT)
        stdout, stderr = self.process.communicate(timeout=TIMEOUT)
        return self.process.returncode, stdout, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=TIMEOUT)


@pytest.fixture
def processes() -> Iterator[list[FakeServerProcess]]:
    started: list[FakeServerProcess] = []
    yield started
    for process in started:
        process.kill()


def start(processes: list[FakeServerProcess], *args: str, **kwargs: Any) -> FakeServerProcess:
    processes.append(FakeServerProcess(*args, **kwargs))
    return processes[-1]


async def robots_via(base_url: str, sdkappid: int, secret_key: str, admin: str) -> list[str]:
    async with TencentChat(sdkappid, secret_key, admin=admin, base_url=base_url) as chat:
        await chat.create_robot("@RBT#1")
        return await chat.get_all_robots()


# --- stopping: SIGINT and SIGTERM are its normal end ---------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_is_its_normal_stop(
    processes: list[FakeServerProcess], sig: signal.Signals
) -> None:
    server = start(processes, "fake-server")
    base_url = server.first_line().strip()
    assert httpx.get(f"{base_url}/_fake/state").status_code == 200  # it is serving

    server.process.send_signal(sig)
    code, stdout, stderr = server.finish()

    assert code == 0, stderr
    assert stdout == ""  # nothing after the base URL
    assert f"fake-server: stopped by {sig.name}" in stderr
    assert "error" not in stderr
    assert "Traceback" not in stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/_fake/state")


# --- what it prints -------------------------------------------------------------------


def test_it_prints_the_url_then_the_credentials_it_accepts(
    processes: list[FakeServerProcess],
) -> None:
    server = start(processes, "fake-server", "--sdkappid", "1400000042", "--admin", "root")
    base_url = server.first_line().strip()
    assert base_url.startswith("http://127.0.0.1:")  # alone on the line, as before

    assert asyncio.run(robots_via(base_url, 1400000042, "fake-secret-key", "root")) == ["@RBT#1"]
    server.process.send_signal(signal.SIGINT)
    code, _, stderr = server.finish()
    assert code == 0
    assert "sdkappid:   1400000042" in stderr
    assert "admin:      root" in stderr
    assert "secret key: fake-secret-key" in stderr
    assert f"GET {base_url}/_fake/state" in stderr
    assert "Ctrl-C" in stderr


def test_with_json_the_first_line_is_one_object(processes: list[FakeServerProcess]) -> None:
    server = start(processes, "--json", "fake-server", "--secret-key", "s3", "--room", "r1")
    document = json.loads(server.first_line())

    base_url = document["base_url"]
    assert document == {  # the fake's defaults where nothing was given
        "base_url": base_url,
        "sdkappid": 1400000000,
        "admin": "administrator",
        "secret_key": "s3",
        "state_url": f"{base_url}/_fake/state",
        "calls_url": f"{base_url}/_fake/calls",
    }
    assert asyncio.run(robots_via(base_url, 1400000000, "s3", "administrator")) == ["@RBT#1"]
    state = httpx.get(document["state_url"]).json()
    assert state["rooms"] == {"r1": []}
    assert [robot["user_id"] for robot in state["robots"]] == ["@RBT#1"]
    calls = httpx.get(document["calls_url"]).json()["calls"]
    assert [call["endpoint"] for call in calls] == [
        Endpoint.CREATE_ROBOT,
        Endpoint.GET_ALL_ROBOTS,
    ]
    server.process.send_signal(signal.SIGTERM)
    code, stdout, _ = server.finish()
    assert code == 0
    assert stdout == ""


def test_a_secret_key_from_the_environment_is_accepted_but_not_echoed(
    processes: list[FakeServerProcess],
) -> None:
    key = "maybe-a-real-key-0123456789"
    server = start(
        processes,
        "fake-server",
        "--json",
        env={"TENCENT_CHAT_SECRET_KEY": key, "TENCENT_CHAT_SDKAPPID": "1400000077"},
    )
    document = json.loads(server.first_line())
    assert document["secret_key"] is None
    assert document["sdkappid"] == 1400000077
    assert asyncio.run(robots_via(document["base_url"], 1400000077, key, "administrator")) == [
        "@RBT#1"
    ]
    server.process.send_signal(signal.SIGINT)
    code, stdout, stderr = server.finish()
    assert code == 0
    assert key not in stdout + stderr
    assert "secret key: the value of TENCENT_CHAT_SECRET_KEY" in stderr


# --- the app it accepts: the shared options, wherever given --------------------------


@pytest.fixture
def taken_port() -> Iterator[str]:
    """A port already listened on: the command stops (exit 2) once its fake is made."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield str(taken.getsockname()[1])


CREDENTIALS = ["--sdkappid", "1400000042", "--secret-key", "s", "--admin", "root"]


@pytest.mark.parametrize(
    ("before", "after", "env"),
    [
        (CREDENTIALS, [], {}),  # before the subcommand
        ([], CREDENTIALS, {}),  # after it
        (
            [],
            [],
            {
                "TENCENT_CHAT_SDKAPPID": "1400000042",
                "TENCENT_CHAT_SECRET_KEY": "s",
                "TENCENT_CHAT_ADMIN": "root",
            },
        ),
    ],
)
def test_the_app_comes_from_the_shared_options_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    taken_port: str,
    before: list[str],
    after: list[str],
    env: dict[str, str],
) -> None:
    fakes = spy_fakes(monkeypatch, _fake_server)
    result = CliRunner().invoke(
        cli, [*before, "fake-server", "--port", taken_port, *after], env=env
    )
    assert "cannot listen" in result.output
    (fake,) = fakes
    assert (fake.sdkappid, fake.secret_key, fake.admin) == (1400000042, "s", "root")


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--sdkappid", "abc", "fake-server"], {}),
        (["fake-server", "--sdkappid", "1.5"], {}),
        (["fake-server", "--sdkappid", "0"], {}),
        (["fake-server"], {"TENCENT_CHAT_SDKAPPID": "-3"}),
    ],
)
def test_a_sdkappid_not_a_positive_integer_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, taken_port: str, args: list[str], env: dict[str, str]
) -> None:
    fakes = spy_fakes(monkeypatch, _fake_server)
    result = CliRunner().invoke(cli, [*args, "--port", taken_port], env=env)
    assert result.exit_code == 2
    assert "--sdkappid must be a positive integer" in result.stderr
    assert "Traceback" not in result.output
    assert fakes == []


def test_a_sdkappid_usage_error_with_json_is_one_json_object(taken_port: str) -> None:
    args = ["--json", "--sdkappid", "abc", "fake-server", "--port", taken_port]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    failure = json.loads(result.stdout)
    assert failure["ok"] is False
    assert "--sdkappid" in failure["error"]["message"]


# --- the server's rate limit: --server-rate-limit ------------------------------------


@pytest.mark.parametrize(
    ("args", "limit"),
    [
        (["fake-server", "--server-rate-limit", "50"], 50),
        (["fake-server", "--server-rate-limit", "0"], None),
        # Before the subcommand --rate-limit is a client's pace: said, and not the limit.
        (["--rate-limit", "5", "fake-server"], 200),
    ],
)
def test_server_rate_limit_is_the_limit_it_enforces(
    monkeypatch: pytest.MonkeyPatch, taken_port: str, args: list[str], limit: int | None
) -> None:
    fakes = spy_fakes(monkeypatch, _fake_server)
    result = CliRunner().invoke(cli, [*args, "--port", taken_port])
    (fake,) = fakes
    assert fake.rate_limit[Endpoint.ROOM_ADD_ROBOT] == limit
    if args[0] == "--rate-limit":
        assert "does nothing here" in result.stderr
        assert "--server-rate-limit" in result.stderr


def test_rate_limit_on_fake_server_is_a_deprecated_alias(
    monkeypatch: pytest.MonkeyPatch, taken_port: str
) -> None:
    fakes = spy_fakes(monkeypatch, _fake_server)
    result = CliRunner().invoke(cli, ["fake-server", "--rate-limit", "7", "--port", taken_port])
    (fake,) = fakes
    assert fake.rate_limit[Endpoint.ROOM_ADD_ROBOT] == 7
    assert "deprecated: use --server-rate-limit" in result.stderr


def test_both_names_of_the_limit_is_a_usage_error(taken_port: str) -> None:
    args = ["fake-server", "--rate-limit", "7", "--server-rate-limit", "8", "--port", taken_port]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "give --server-rate-limit only" in result.stderr


# --- help -----------------------------------------------------------------------------


def test_every_option_has_help_text() -> None:
    command = cli.commands["fake-server"]
    shown = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    names = {opt for option in shown for opt in option.opts}
    for expected in ("--host", "--port", "--server-rate-limit", "--sdkappid", "--secret-key"):
        assert expected in names
    assert "--rate-limit" not in CliRunner().invoke(cli, ["fake-server", "--help"]).output
    for option in shown:
        assert option.help, f"{option.opts[0]} has no help text"


# --- --callback: a robot service in any language hears sendmsg to its robots -------------


class _Recorder(BaseHTTPRequestHandler):
    """Answers every POST as a robot service does, and hands it to the test."""

    received: queue.Queue[tuple[str, bytes]] = queue.Queue()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.put((self.path, body))
        answer = b'{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_sendmsg_to_a_robot_is_delivered_to_the_callback_signed(
    processes: list[FakeServerProcess],
) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        server = start(
            processes,
            "fake-server",
            "--port",
            "0",
            "--callback",
            url,
            env={"TENCENT_CHAT_CALLBACK_TOKEN": "xxxxyyyy"},
        )
        base_url = server.first_line().strip()

        async def message_a_robot() -> None:
            async with TencentChat(
                1400000000, "fake-secret-key", admin="administrator", base_url=base_url
            ) as chat:
                await chat.create_robot("@RBT#1")
                await chat.send_c2c_message(None, "@RBT#1", "ping")

        asyncio.run(message_a_robot())
        path, body = _Recorder.received.get(timeout=TIMEOUT)
    finally:
        receiver.shutdown()
    query = dict(parse_qsl(urlsplit(path).query))
    assert urlsplit(path).path == "/hook"
    assert query["CallbackCommand"] == "Bot.OnC2CMessage"
    assert query["OptPlatform"] == "RESTAPI"
    # Sign = sha256(Token + RequestTime), in lower-case hex (robot-conversation.md, 1).
    expected = hashlib.sha256(("xxxxyyyy" + query["RequestTime"]).encode()).hexdigest()
    assert query["Sign"] == expected
    event = json.loads(body)
    assert (event["From_Account"], event["To_Account"]) == ("administrator", "@RBT#1")
    assert event["MsgBody"] == [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "ping"}}]


def test_a_callback_that_is_no_url_is_a_usage_error(taken_port: str) -> None:
    result = CliRunner().invoke(cli, ["fake-server", "--port", taken_port, "--callback", "hook"])
    assert result.exit_code == 2
    assert "--callback must be an http:// or https:// URL" in result.stderr
