"""``provision`` stopped by SIGINT or SIGTERM, in a real process against a served fake.

The fake holds a call unanswered; the signal is sent once it is held (so calls have
succeeded and one is in flight), and the report must account for every item of the
plan and agree with the journal and with what the server holds. A run killed outright
(SIGKILL) is carried on with --resume from its journal.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tencent_chat_robots import Endpoint

from .._servers import fake_in_thread
from ._held_fake import HeldFake
from ._process import TIMEOUT, CliProcess
from .conftest import Served, invoke

ROBOTS = [f"@RBT#{i:02d}" for i in range(10)]
ROOMS = [f"room-{i}" for i in range(10)]
PLANNED = {f"create {robot}" for robot in ROBOTS} | {
    f"room add {room} {robot}" for robot in ROBOTS for room in ROOMS
}
COUNTS = re.compile(
    r"provision: interrupted by (?P<interrupted>\w+): (?P<succeeded>\d+) succeeded, "
    r"(?P<failed>\d+) failed, (?P<skipped>\d+) skipped, (?P<not_started>\d+) not started, "
    r"(?P<cancelled>\d+) cancelled \((?P<items>\d+) items\)"
)
CANCELLED = "cancelled (sent, so perhaps done):"


@pytest.fixture
def held_fake() -> Iterator[tuple[HeldFake, str]]:
    fake = HeldFake()
    for room in ROOMS:
        fake.create_room(room)
    with fake_in_thread(fake) as base_url:
        try:
            yield fake, base_url
        finally:
            fake.release()


@pytest.fixture
def plan(tmp_path: Path) -> str:
    path = tmp_path / "plan.json"
    robots = [{"user_id": robot, "rooms": ROOMS} for robot in ROBOTS]
    path.write_text(json.dumps({"robots": robots}), encoding="utf-8")
    return str(path)


def connection(fake: HeldFake, base_url: str) -> list[str]:
    return [
        "--base-url",
        base_url,
        "--sdkappid",
        str(fake.sdkappid),
        "--secret-key",
        fake.secret_key,
        "--admin",
        fake.admin,
    ]


def start(fake: HeldFake, base_url: str, *args: str, json_output: bool) -> CliProcess:
    return CliProcess(
        *connection(fake, base_url),
        # Slow enough that the plan is far from done when the signal comes.
        "--rate-limit",
        "20",
        *(["--json"] if json_output else []),
        "provision",
        *args,
    )


def text_report(stdout: str) -> dict[str, Any]:
    """The text report in the shape of the JSON one (the counts and the cancellations)."""
    counts = COUNTS.search(stdout)
    assert counts is not None, stdout
    report: dict[str, Any] = {key: int(n) for key, n in counts.groupdict().items() if n.isdigit()}
    report["interrupted"] = counts["interrupted"]
    lines = stdout.splitlines()
    named = []
    if CANCELLED in lines:
        for line in lines[lines.index(CANCELLED) + 1 :]:
            if not line.startswith("  "):
                break
            named.append({"item": line.strip()})
    report["cancellations"] = named
    return report


def item_of(key: list[Any]) -> str:
    """A journal's call key as a report item."""
    if key[0] == "create_robot":
        return f"create {key[1]}"
    assert key[0] == "add_robot_to_room", key
    return f"room add {key[1]} {key[2]}"


def journal_items(journal: Path) -> dict[str, set[str]]:
    """The items a journal records: succeeded, cancelled (sent), stopped before sending."""
    kinds: dict[str, set[str]] = {"succeeded": set(), "cancelled": set(), "not sent": set()}
    for line in journal.read_text(encoding="utf-8").splitlines()[1:]:
        record = json.loads(line)
        if "ok" not in record:
            continue
        if record["ok"]:
            kinds["succeeded"].add(item_of(record["call"]))
        else:
            assert record["error"] == "BulkStoppedError", record
            sent = "may have reached the server" in record["message"]
            kinds["cancelled" if sent else "not sent"].add(item_of(record["call"]))
    return kinds


def accounts_for_the_plan(report: dict[str, Any]) -> None:
    kinds = ("succeeded", "failed", "skipped", "not_started", "cancelled")
    assert sum(report[kind] for kind in kinds) == report["items"] == len(PLANNED), report


def on_server(fake: HeldFake) -> set[str]:
    placed = {f"room add {room} {robot}" for room in ROOMS for robot in fake.room_members(room)}
    return {f"create {robot}" for robot in fake.robots} | placed


@pytest.mark.parametrize(
    ("sig", "json_output", "endpoint", "label"),
    [
        (signal.SIGINT, True, Endpoint.ROOM_ADD_ROBOT, "room add "),
        (signal.SIGINT, False, Endpoint.ROOM_ADD_ROBOT, "room add "),
        # While robots are being created: none of the room adds starts.
        (signal.SIGTERM, True, Endpoint.CREATE_ROBOT, "create "),
    ],
)
def test_a_signal_lets_calls_in_flight_finish_and_reports_the_rest(
    held_fake: tuple[HeldFake, str],
    plan: str,
    tmp_path: Path,
    sig: signal.Signals,
    json_output: bool,
    endpoint: str,
    label: str,
) -> None:
    fake, base_url = held_fake
    journal = tmp_path / "journal"
    fake.hold(endpoint, after=3, at_most=1)
    cli = start(fake, base_url, plan, "--journal", str(journal), json_output=json_output)
    try:
        fake.held.get(timeout=TIMEOUT)
        cli.process.send_signal(sig)
        notice = cli.wait_for_stderr(f"{sig.name}: starting no new calls")
        waiting = re.search(r"waiting for (\d+) calls? in flight", notice)
        assert waiting is not None
        assert int(waiting[1]) >= 1
        fake.release()  # the held call is answered only now, after the signal
        code, stdout, stderr = cli.finish()
    finally:
        cli.kill()

    assert code == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads(stdout) if json_output else text_report(stdout)
    assert report["interrupted"] == sig.name
    assert report["failed"] == report["skipped"] == report["cancelled"] == 0
    assert report["not_started"] > 0
    accounts_for_the_plan(report)
    done = journal_items(journal)["succeeded"]
    assert len(done) == report["succeeded"]
    # The three calls let through and the one held at the signal.
    assert sum(item.startswith(label) for item in done) >= 4
    assert on_server(fake) == done


def test_a_second_sigint_cancels_the_calls_in_flight(
    held_fake: tuple[HeldFake, str], plan: str, tmp_path: Path
) -> None:
    fake, base_url = held_fake
    journal = tmp_path / "journal"
    fake.hold(Endpoint.ROOM_ADD_ROBOT, after=3)
    cli = start(fake, base_url, plan, "--journal", str(journal), json_output=True)
    try:
        fake.held.get(timeout=TIMEOUT)
        cli.process.send_signal(signal.SIGINT)
        cli.wait_for_stderr("SIGINT: starting no new calls")
        cli.process.send_signal(signal.SIGINT)
        cli.wait_for_stderr("SIGINT again: cancelling")
        code, stdout, stderr = cli.finish()
    finally:
        cli.kill()

    assert code == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads(stdout)
    assert report["interrupted"] == "SIGINT"
    accounts_for_the_plan(report)
    recorded = journal_items(journal)
    cancelled = recorded["cancelled"]
    held = 1 + fake.held.qsize()  # sent, never answered: all cancelled
    assert report["cancelled"] == len(cancelled) >= held
    assert all(item.startswith("room add ") for item in cancelled)
    named = {entry["item"] for entry in report["cancellations"]}
    assert len(named) == min(20, len(cancelled))
    assert named <= cancelled
    done = recorded["succeeded"]
    assert len(done) == report["succeeded"]
    # A cancelled call may have been done by the server before its answer was dropped.
    assert done <= on_server(fake) <= done | cancelled


def test_a_run_killed_outright_is_resumed_from_its_journal(
    held_fake: tuple[HeldFake, str], tmp_path: Path
) -> None:
    fake, base_url = held_fake
    plan = tmp_path / "plan.csv"  # one placement per row
    rows = "".join(f"{robot},{room}\n" for room in ROOMS for robot in ROBOTS)
    plan.write_text(f"user_id,rooms\n{rows}", encoding="utf-8")
    journal = tmp_path / "journal"
    fake.hold(Endpoint.ROOM_ADD_ROBOT, after=30)  # the run cannot end before the kill
    cli = start(fake, base_url, str(plan), "--journal", str(journal), json_output=True)
    try:
        wait_for_room_adds(journal, 30, cli)
        fake.held.get(timeout=TIMEOUT)  # and the next one is on the wire
        cli.process.kill()
        cli.process.wait(timeout=TIMEOUT)
    finally:
        cli.kill()
    fake.release()

    resumed = invoke(
        *connection(fake, base_url), "--json", "provision", str(plan), "--resume", str(journal)
    )

    assert resumed.exit_code == 0, resumed.output
    report = json.loads(resumed.stdout)
    assert report["succeeded_earlier"] >= len(ROBOTS) + 30
    assert report["succeeded_earlier"] + report["succeeded"] == len(PLANNED)
    room_adds = Counter(
        (call.body["RoomId"], call.body["Member_Account"])
        for call in fake.calls
        if call.endpoint == Endpoint.ROOM_ADD_ROBOT
    )
    assert set(room_adds) == {(room, robot) for room in ROOMS for robot in ROBOTS}
    sent_twice = sum(count - 1 for count in room_adds.values())
    assert 1 <= report["unfinished_earlier"] < len(PLANNED) - report["succeeded_earlier"]
    assert sent_twice <= report["unfinished_earlier"]
    assert all(sorted(fake.room_members(room)) == ROBOTS for room in ROOMS)


def wait_for_room_adds(journal: Path, count: int, cli: CliProcess) -> None:
    """Until the journal records ``count`` room adds done (it is read as it grows)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        if journal.exists():
            text = journal.read_text(encoding="utf-8")
            if text.count('"ok":true,"call":["add_robot_to_room"') >= count:
                return
        assert cli.process.poll() is None, "the run ended before it was killed"
        assert time.monotonic() < deadline, "the journal did not grow"
        time.sleep(0.01)  # polling the file: no event tells when a line is written


def test_a_signal_while_the_plan_is_read_reports_that_nothing_started(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the run, a signal ends the command with its report, not click's 'Aborted!'."""
    import tencent_chat_robots.cli._provision as provision_module

    def load_and_get_interrupted(path: Path) -> object:
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C while it reads
        raise AssertionError("the signal should have stopped the reading")

    monkeypatch.setattr(provision_module, "load_plan", load_and_get_interrupted)
    plan = tmp_path / "plan.json"
    plan.write_text('{"robots": [{"user_id": "@RBT#001"}]}')
    result = served.invoke("--json", "provision", str(plan))
    assert result.exit_code == 130
    report = json.loads(result.stdout)
    assert report["interrupted"] == "SIGINT"
    assert report["succeeded"] == 0
    assert served.fake.calls == []


def test_a_signal_after_the_last_call_does_not_cut_the_report_short(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tencent_chat_robots.cli._provision as provision_module

    real_print = provision_module.print_json_report

    def print_after_a_signal(report: provision_module.Report) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # lands between the run and the report
        real_print(report)

    monkeypatch.setattr(provision_module, "print_json_report", print_after_a_signal)
    plan = tmp_path / "plan.json"
    plan.write_text('{"robots": [{"user_id": "@RBT#001"}]}')
    result = served.invoke("--json", "provision", str(plan))
    assert result.exit_code == 0  # the run had finished: the late signal changes nothing
    assert json.loads(result.stdout)["succeeded"] == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back


# -- a signal while the robots are counted, before the first creation -------------------------


@pytest.mark.parametrize("signals", [1, 2], ids=["answered", "abandoned"])
def test_a_signal_while_the_robots_are_counted_sends_no_creation(
    held_fake: tuple[HeldFake, str], plan: str, tmp_path: Path, signals: int
) -> None:
    fake, base_url = held_fake
    journal = tmp_path / "journal"
    fake.hold(Endpoint.GET_ALL_ROBOTS, after=0, at_most=1)
    cli = start(fake, base_url, plan, "--journal", str(journal), json_output=True)
    try:
        fake.held.get(timeout=TIMEOUT)  # get_all_robots is on the wire, unanswered
        cli.process.send_signal(signal.SIGINT)
        cli.wait_for_stderr("SIGINT: starting no new calls; waiting for 1 call in flight")
        if signals == 2:
            cli.process.send_signal(signal.SIGINT)
            cli.wait_for_stderr("SIGINT again: cancelling 1 call in flight")
        else:
            fake.release()  # answered after the signal: still no creation
        code, stdout, stderr = cli.finish()
    finally:
        cli.kill()

    assert code == 130, stderr
    report = json.loads(stdout)
    assert (report["interrupted"], report["succeeded"], report["not_started"]) == (
        "SIGINT",
        0,
        len(PLANNED),
    )
    assert fake.robots == []
    assert [c.endpoint for c in fake.calls if c.endpoint != Endpoint.GET_ALL_ROBOTS] == []
    assert journal_items(journal)["succeeded"] == set()


def test_a_command_ending_its_process_leaves_the_signals_ignored_after_its_report(
    tmp_path: Path,
) -> None:
    """A second signal just after the report must not end the process by the default
    action (exit code -2 or -15 instead of the report's): the console script keeps
    them ignored once the command is done, where a command run in-process hands back."""
    import subprocess
    import sys

    plan = tmp_path / "plan.csv"
    plan.write_text("user_id\nnot-a-robot\n")  # exit 2, after command_signals() was entered
    script = (
        "import signal, sys\n"
        "from tencent_chat_robots.cli import main\n"
        f"sys.argv = ['tencent-chat-robots', 'provision', {str(plan)!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as end:\n"
        "    print(end.code, signal.getsignal(signal.SIGINT) is signal.SIG_IGN,"
        " signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.split() == ["2", "True", "True"], done.stderr

    # In-process (as here), the handlers are handed back.
    before = signal.getsignal(signal.SIGINT)
    assert invoke("provision", str(plan)).exit_code == 2
    assert signal.getsignal(signal.SIGINT) is before
