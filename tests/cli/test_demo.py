"""``demo`` and ``fake-server``, end to end."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tencent_chat_robots import Endpoint, TencentChat
from tencent_chat_robots.cli import _demo
from tencent_chat_robots.cli._context import ChatOptions
from tencent_chat_robots.cli._main import cli

from ._spies import received, spy_bulk_runs, spy_fakes, spy_permits


def test_demo_small_run_succeeds_within_the_limit() -> None:
    result = CliRunner().invoke(
        cli,
        ["--json", "demo", "--rooms", "12", "--live-groups", "6"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["failed_calls"] == 0
    rows = {row["endpoint"]: row for row in report["endpoints"]}
    assert set(rows) == set(Endpoint.ALL)
    assert rows[Endpoint.CREATE_ROBOT]["calls"] == 20
    assert rows[Endpoint.ROOM_ADD_ROBOT]["calls"] == 12 * 10
    # Scripted faults on create_robot and room add_robot were retried, not lost.
    assert rows[Endpoint.CREATE_ROBOT]["retries"] >= 2
    assert rows[Endpoint.ROOM_ADD_ROBOT]["retries"] >= 3
    for row in rows.values():
        assert row["succeeded"] == row["calls"]
        assert row["max_per_second"] <= 190
        assert row["max_per_second_arrived"] <= 200


def test_each_phase_is_one_bulk_run_and_the_stats_match_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = spy_bulk_runs(monkeypatch)
    permits = spy_permits(monkeypatch)
    fakes = spy_fakes(monkeypatch, _demo)
    result = CliRunner().invoke(
        cli, ["--json", "demo", "--rooms", "5", "--live-groups", "5"], catch_exceptions=False
    )

    assert result.exit_code == 0, result.output
    rows = {row["endpoint"]: row for row in json.loads(result.stdout)["endpoints"]}
    # create, provision (rooms, groups, the list), cleanup, delete: one run each, in turn.
    assert [run.total for run in runs] == [20, 5 * 10 + 5 * 5 + 1, 1 * 10 + 1, 20]
    assert all(run.done == run.succeeded == run.total for run in runs)
    attempts = {endpoint: row["attempts"] for endpoint, row in rows.items()}
    assert permits == {(endpoint, "bulk"): n for endpoint, n in attempts.items()}
    (fake,) = fakes
    assert received(fake) == attempts


def test_demo_prints_a_table_for_people() -> None:
    result = CliRunner().invoke(
        cli, ["demo", "--rooms", "2", "--live-groups", "1"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "Demo summary" in result.output
    for label in ("create_robot", "room add_robot", "group del_robots"):
        assert label in result.output
    assert "every call succeeded" in result.output


def test_fake_server_command_serves_other_programs() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tencent_chat_robots.cli import main; main()",
            "fake-server",
            "--room",
            "room-1",
            "--secret-key",
            "k",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")

        async def use_it() -> list[str]:
            async with TencentChat(1400000000, "k", base_url=base_url) as chat:
                await chat.create_robot("@RBT#1")
                await chat.add_robot_to_room("room-1", "@RBT#1")
                return await chat.get_all_robots()

        assert asyncio.run(use_it()) == ["@RBT#1"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_fake_server_reports_a_taken_port_without_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["fake-server", "--port", str(port)])
    assert result.exit_code == 2
    assert "cannot listen on 127.0.0.1:" in result.output
    assert "Traceback" not in result.output


def test_fake_server_refuses_a_malformed_live_group_id() -> None:
    result = CliRunner().invoke(cli, ["fake-server", "--live-group", "bad id"])
    assert result.exit_code == 2
    assert "invalid live group id" in result.output


def test_options_never_print_the_secret_key() -> None:
    options = ChatOptions(sdkappid="1", secret_key="VERY-SECRET")
    assert "VERY-SECRET" not in repr(options)


def test_fake_server_port_out_of_range_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["fake-server", "--port", "70000"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
