"""``provision`` stopped by SIGINT or SIGTERM, in a real process against a served fake.

The fake holds a call unanswered; the signal is sent once it is held (so calls have
succeeded and one is in flight), and the report must account for every item of the
plan and agree with what the server holds.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tencent_chat_robots import Endpoint

from .._servers import fake_in_thread
from ._held_fake import HeldFake
from ._process import TIMEOUT, CliProcess
from .conftest import Served

ROBOTS = [f"@RBT#{i:02d}" for i in range(10)]
ROOMS = [f"room-{i}" for i in range(10)]
PLANNED = {f"create {robot}" for robot in ROBOTS} | {
    f"room add {room} {robot}" for robot in ROBOTS for room in ROOMS
}
HEADINGS = {
    "failed:": "failed",
    "skipped:": "skipped",
    "not started:": "not_started",
    "cancelled (sent, so perhaps done):": "cancelled",
}
COUNTS = re.compile(
    r"provision: interrupted by (?P<interrupted>\w+): (?P<succeeded>\d+) succeeded, "
    r"(?P<failed>\d+) failed, (?P<skipped>\d+) skipped, (?P<not_started>\d+) not started, "
    r"(?P<cancelled>\d+) cancelled"
)


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


def start(fake: HeldFake, base_url: str, plan: str, *, json_output: bool) -> CliProcess:
    return CliProcess(
        "--base-url",
        base_url,
        "--sdkappid",
        str(fake.sdkappid),
        "--secret-key",
        fake.secret_key,
        "--admin",
        fake.admin,
        # Slow enough that the plan is far from done when the signal comes.
        "--rate-limit",
        "20",
        *(["--json"] if json_output else []),
        "provision",
        plan,
    )


def text_report(stdout: str) -> dict[str, Any]:
    """The text report in the shape of the JSON one."""
    counts = COUNTS.search(stdout)
    assert counts is not None, stdout
    report: dict[str, Any] = {key: [] for key in HEADINGS.values()}
    section: list[Any] | None = None
    for line in stdout.splitlines():
        if line in HEADINGS:
            section = report[HEADINGS[line]]
        elif line.startswith("  ") and section is not None:
            section.append({"item": line.strip()})
        else:
            section = None
    for key in HEADINGS.values():
        assert len(report[key]) == int(counts[key]), key
    report["succeeded"] = int(counts["succeeded"])
    report["interrupted"] = counts["interrupted"]
    return report


def items(report: dict[str, Any], key: str) -> set[str]:
    return {entry["item"] for entry in report[key]}


def succeeded(report: dict[str, Any]) -> set[str]:
    """What the report says was done, after checking that it accounts for the whole plan."""
    others = [items(report, key) for key in HEADINGS.values()]
    assert sum(map(len, others)) + report["succeeded"] == len(PLANNED)
    done = PLANNED.difference(*others)
    assert len(done) == report["succeeded"]
    return done


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
    sig: signal.Signals,
    json_output: bool,
    endpoint: str,
    label: str,
) -> None:
    fake, base_url = held_fake
    fake.hold(endpoint, after=3, at_most=1)
    cli = start(fake, base_url, plan, json_output=json_output)
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
    assert report["failed"] == report["skipped"] == report["cancelled"] == []
    assert report["not_started"]
    done = succeeded(report)
    # The three calls let through and the one held at the signal.
    assert sum(item.startswith(label) for item in done) >= 4
    assert on_server(fake) == done


def test_a_second_sigint_cancels_the_calls_in_flight(
    held_fake: tuple[HeldFake, str], plan: str
) -> None:
    fake, base_url = held_fake
    fake.hold(Endpoint.ROOM_ADD_ROBOT, after=3)
    cli = start(fake, base_url, plan, json_output=True)
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
    cancelled = items(report, "cancelled")
    held = 1 + fake.held.qsize()  # sent, never answered: all cancelled
    assert len(cancelled) >= held
    assert all(item.startswith("room add ") for item in cancelled)
    done = succeeded(report)
    # A cancelled call may have been done by the server before its answer was dropped.
    assert done <= on_server(fake) <= done | cancelled


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

    real_print_json = provision_module.print_json

    def print_json_after_a_signal(document: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # lands between the run and the report
        real_print_json(document)

    monkeypatch.setattr(provision_module, "print_json", print_json_after_a_signal)
    plan = tmp_path / "plan.json"
    plan.write_text('{"robots": [{"user_id": "@RBT#001"}]}')
    result = served.invoke("--json", "provision", str(plan))
    assert result.exit_code == 0  # the run had finished: the late signal changes nothing
    assert json.loads(result.stdout)["succeeded"] == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back
