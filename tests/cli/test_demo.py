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
from tencent_chat_robots.cli import _demo, _fake_server
from tencent_chat_robots.cli._context import ChatOptions
from tencent_chat_robots.cli._main import cli

from ._spies import received, spy_bulk_runs, spy_fakes, spy_permits

# The documented rate of each API: 200/s, and 100/s for the live-room (live_engine) ones.
LIVE_ROOM_ENDPOINTS = (
    Endpoint.LIVE_ROOM_ADD_ROBOT,
    Endpoint.LIVE_ROOM_DEL_ROBOT,
    Endpoint.LIVE_ROOM_GET_ROBOT,
)


def test_demo_small_run_succeeds_within_the_limit() -> None:
    result = CliRunner().invoke(
        cli,
        ["--json", "demo", "--rooms", "12", "--live-groups", "6", "--live-rooms", "10"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["failed_calls"] == 0
    rows = {row["endpoint"]: row for row in report["endpoints"]}
    assert set(rows) == set(Endpoint.ALL)
    # Each row names its API by path and by method name, as the client spells it.
    assert {row["method"]: path for path, row in rows.items()} == {
        "create_robot": Endpoint.CREATE_ROBOT,
        "get_all_robots": Endpoint.GET_ALL_ROBOTS,
        "delete_robot": Endpoint.DELETE_ROBOT,
        "add_robot_to_room": Endpoint.ROOM_ADD_ROBOT,
        "remove_robot_from_room": Endpoint.ROOM_DELETE_ROBOT,
        "add_robots_to_live_group": Endpoint.LIVE_GROUP_ADD_ROBOTS,
        "remove_robots_from_live_group": Endpoint.LIVE_GROUP_DEL_ROBOTS,
        "add_robots_to_live_room": Endpoint.LIVE_ROOM_ADD_ROBOT,
        "remove_robots_from_live_room": Endpoint.LIVE_ROOM_DEL_ROBOT,
        "get_live_room_robots": Endpoint.LIVE_ROOM_GET_ROBOT,
        "send_c2c_message": Endpoint.SEND_C2C_MESSAGE,
        "send_group_message": Endpoint.SEND_GROUP_MESSAGE,
        "modify_c2c_message": Endpoint.MODIFY_C2C_MESSAGE,
        "modify_group_message": Endpoint.MODIFY_GROUP_MESSAGE,
        "send_stream_chunk": Endpoint.SEND_STREAM_CHUNK,
    }
    assert rows[Endpoint.CREATE_ROBOT]["calls"] == 20
    assert rows[Endpoint.ROOM_ADD_ROBOT]["calls"] == 12 * 10
    # Every live room gets its robots in one call; a fifth are emptied, the rest listed.
    assert rows[Endpoint.LIVE_ROOM_ADD_ROBOT]["calls"] == 10
    assert rows[Endpoint.LIVE_ROOM_DEL_ROBOT]["calls"] == 2
    assert rows[Endpoint.LIVE_ROOM_GET_ROBOT]["calls"] == 8
    # Scripted faults on create_robot, add_robot_to_room and add_robots_to_live_room
    # were retried, not lost.
    assert rows[Endpoint.CREATE_ROBOT]["retries"] >= 2
    assert rows[Endpoint.ROOM_ADD_ROBOT]["retries"] >= 3
    assert rows[Endpoint.LIVE_ROOM_ADD_ROBOT]["retries"] >= 2
    for endpoint, row in rows.items():
        limit = 100 if endpoint in LIVE_ROOM_ENDPOINTS else 200
        assert row["documented_rate"] == limit
        assert row["pace"] == limit * 0.95
        assert row["succeeded"] == row["calls"]
        assert row["max_per_second"] <= row["pace"]
        assert row["max_per_second_arrived"] <= limit


def test_the_robots_answer_every_message_once_and_nothing_else() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "--json",
            "demo",
            "--rooms",
            "2",
            "--live-groups",
            "1",
            "--live-rooms",
            "1",
            "--users",
            "12",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    talk = report["conversation"]
    # 12 users, three messages each, and (4 groups x 5 mentions, so) 12 mentions.
    assert talk["messages"] == 12 * 3 + 12
    assert talk["answers"] == talk["messages"]
    assert talk["wrong"] == []
    assert talk["ok"] is True
    receiver = talk["receiver"]
    assert receiver["handled"] == talk["messages"]
    # Every 7th of the 36 one-to-one messages came twice: 0, 7, ..., 35.
    assert receiver["duplicate"] == 6
    assert receiver["looped"] == 1  # the robot-to-robot message
    assert receiver["refused:request_time"] == 1  # the stale one
    # Each deliverey: once per message, the duplicates again, the loop and the stale one.
    assert talk["deliveries"] == talk["messages"] + 6 + 1 + 1
    rows = {row["method"]: row for row in report["endpoints"]}
    # Each answer streamed: one-to-one in pieces (the first at once, the last finishing),
    # in groups a message sent and then replaced with the whole answer.
    streams = talk["streams"]
    assert streams["count"] == 36 + 12
    assert streams["final_text_as_written"] == 48
    assert 2 <= streams["calls_per_stream"]["mean"] <= streams["calls_per_stream"]["max"]
    assert streams["max_calls_in_a_second"] <= 5  # send_stream_msg: 5 a second per stream
    assert rows["send_stream_chunk"]["calls"] >= 36 * 2
    assert rows["send_group_message"]["calls"] == 12
    assert rows["modify_group_message"]["calls"] >= 12
    # The robot-to-robot note, sent and corrected.
    assert rows["send_c2c_message"]["calls"] == rows["modify_c2c_message"]["calls"] == 1


def test_each_phase_is_one_bulk_run_and_the_stats_match_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = spy_bulk_runs(monkeypatch)
    permits = spy_permits(monkeypatch)
    fakes = spy_fakes(monkeypatch, _demo)
    result = CliRunner().invoke(
        cli,
        ["--json", "demo", "--rooms", "5", "--live-groups", "5", "--live-rooms", "5"],
        catch_exceptions=False,
    )

    assert result.exit_code == 0, result.output
    rows = {row["endpoint"]: row for row in json.loads(result.stdout)["endpoints"]}
    # create, provision (rooms, groups, live rooms, the list of robots), cleanup (a room,
    # a group, a live room emptied, four live rooms listed), delete: one run each, in turn.
    assert [run.total for run in runs] == [20, 5 * 10 + 5 * 5 + 5 + 1, 10 + 1 + 1 + 4, 20]
    assert all(run.done == run.succeeded == run.total for run in runs)
    attempts = {endpoint: row["attempts"] for endpoint, row in rows.items()}
    # The bulk runs' calls wait in the bulk class; the robots' messages are interactive,
    # but for a streamed answer's updates, which wait in the bulk class so that new
    # answers' first texts (and ending answers' last) go first.
    interactive = {Endpoint.SEND_C2C_MESSAGE, Endpoint.SEND_GROUP_MESSAGE}
    interactive |= {Endpoint.MODIFY_C2C_MESSAGE}
    per_api = {key: n for key, n in permits.items() if not key[0].startswith("group_messages/")}
    firsts = per_api[(Endpoint.SEND_STREAM_CHUNK, "interactive")]
    assert firsts >= 40 * 3 * 2  # a first and a last piece per one-to-one answer
    both = (Endpoint.SEND_STREAM_CHUNK, Endpoint.MODIFY_GROUP_MESSAGE)
    for endpoint in both:  # updates and ends, in either class
        by_class = per_api.pop((endpoint, "interactive"), 0) + per_api.pop((endpoint, "bulk"), 0)
        assert by_class == attempts[endpoint]
    assert per_api == {
        (endpoint, "interactive" if endpoint in interactive else "bulk"): n
        for endpoint, n in attempts.items()
        if endpoint not in both
    }
    # Each group's messages (its answers and their replacements) also took its own permit.
    per_group = {key: n for key, n in permits.items() if key[0].startswith("group_messages/")}
    group_attempts = attempts[Endpoint.SEND_GROUP_MESSAGE] + attempts[Endpoint.MODIFY_GROUP_MESSAGE]
    assert sum(per_group.values()) == group_attempts
    assert "interactive" in {priority for _, priority in per_group}  # first texts, ends
    (fake,) = fakes
    assert received(fake) == attempts


def test_demo_prints_a_table_for_people() -> None:
    result = CliRunner().invoke(
        cli,
        ["demo", "--rooms", "2", "--live-groups", "1", "--live-rooms", "5"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "Demo summary" in result.output
    lines = result.output.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.strip()}
    # Each API by its method name (the one name the client, Call, rates=, bench and the
    # command line all take), not by a label of the demo's own.
    methods = (
        "create_robot",
        "get_all_robots",
        "delete_robot",
        "add_robot_to_room",
        "remove_robot_from_room",
        "add_robots_to_live_group",
        "remove_robots_from_live_group",
        "add_robots_to_live_room",
        "remove_robots_from_live_room",
        "get_live_room_robots",
    )
    for method in methods:
        assert method in rows
    header = lines.index(next(line for line in lines if line.startswith("API ")))
    assert [line.split()[0] for line in lines[header + 2 : header + 12]] == list(methods)
    # Within 80 columns, the longest name included (CliRunner's output is 80 wide).
    assert max(len(line.rstrip()) for line in lines[header : header + 12]) <= 80
    # add_robots_to_live_room: its 5 calls, and the 2 scripted internal errors retried.
    live_room_add = rows["add_robots_to_live_room"]
    assert live_room_add[1] == "5"
    assert int(live_room_add[5]) >= 2
    assert "every call succeeded" in result.output
    pacing = "190/s where the server allows 200/s, 95/s where the server allows 100/s"
    assert pacing in " ".join(result.output.split())  # however the line was wrapped


def test_fake_server_command_serves_other_programs() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tencent_chat_robots.cli import main; main()",
            "fake-server",
            "--room",
            "room-1",
            "--live-room",
            "live-1",
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

        async def use_it() -> tuple[list[str], list[str]]:
            async with TencentChat(1400000000, "k", base_url=base_url) as chat:
                await chat.create_robot("@RBT#1")
                await chat.add_robot_to_room("room-1", "@RBT#1")
                await chat.add_robots_to_live_room("live-1", ["@RBT#1"])
                return await chat.get_all_robots(), await chat.get_live_room_robots("live-1")

        assert asyncio.run(use_it()) == (["@RBT#1"], ["@RBT#1"])
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


def test_fake_server_refuses_a_live_room_id_over_48_bytes() -> None:
    result = CliRunner().invoke(cli, ["fake-server", "--live-room", "x" * 49])
    assert result.exit_code == 2
    assert "invalid live room id" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "live_room_limit", "other_limit"),
    [
        ((), 100, 200),  # each endpoint's documented rate
        (("--server-rate-limit", "50"), 50, 50),
        (("--server-rate-limit", "0"), None, None),
    ],
)
def test_fake_server_limits_and_live_rooms(
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    live_room_limit: int | None,
    other_limit: int | None,
) -> None:
    fakes = spy_fakes(monkeypatch, _fake_server)
    with socket.socket() as taken:  # the command stops once its fake is made and seeded
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(
            cli, ["fake-server", "--port", port, "--live-room", "live-1", *args]
        )
    assert result.exit_code == 2
    (fake,) = fakes
    assert fake.live_room_robots("live-1") == []
    assert fake.rate_limit[Endpoint.LIVE_ROOM_ADD_ROBOT] == live_room_limit
    assert fake.rate_limit[Endpoint.ROOM_ADD_ROBOT] == other_limit


def test_options_never_print_the_secret_key() -> None:
    options = ChatOptions(sdkappid="1", secret_key="VERY-SECRET")
    assert "VERY-SECRET" not in repr(options)


def test_fake_server_port_out_of_range_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["fake-server", "--port", "70000"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
