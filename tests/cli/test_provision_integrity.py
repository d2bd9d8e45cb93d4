"""Provisioning an operator can trust: a journal that cannot lie, one run per journal,
the app's robot limit, a journal that cannot be written, and one JSON object always."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tencent_chat_robots import Endpoint
from tencent_chat_robots.cli import _context
from tencent_chat_robots.cli._journal import Fingerprint, Journal, _line, _sum
from tencent_chat_robots.testing import FakeTencentChat

from .._servers import fake_in_thread
from ._process import ENTRY
from .conftest import Served, invoke

GROUP = "@TGS#live1"
ROBOTS = ["@RBT#1", "@RBT#2"]
ROOMS = ["room-1", "room-2", "room-3"]
PLAN = "user_id,rooms,live_groups\n" + "".join(
    f"{robot},{room},{GROUP}\n" for robot in ROBOTS for room in ROOMS
)
ITEMS = 2 + 6 + 1


def arranged(fake: FakeTencentChat) -> FakeTencentChat:
    for room in ROOMS:
        fake.create_room(room)
    fake.create_live_group(GROUP)
    return fake


@pytest.fixture
def places(served: Served) -> Served:
    arranged(served.fake)
    return served


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.csv"
    path.write_text(PLAN, encoding="utf-8")
    return path


def as_planned(fake: FakeTencentChat) -> bool:
    """Whether the fake holds every placement of PLAN, and nothing else."""
    return (
        sorted(fake.robots) == ROBOTS
        and all(sorted(fake.room_members(room)) == ROBOTS for room in ROOMS)
        and sorted(fake.live_group_members(GROUP)) == ROBOTS
    )


def items_sent(fake: FakeTencentChat) -> list[Any]:
    return [c for c in fake.calls if c.endpoint != Endpoint.GET_ALL_ROBOTS]


# -- 1. a journal line is the plan's own item, or the resume refuses -------------------------


def test_a_hand_edited_success_line_is_refused_by_its_number(
    places: Served, plan: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    places.fake.fail_next(Endpoint.ROOM_ADD_ROBOT, 100002)
    assert places.invoke("provision", str(plan), "--journal", str(journal)).exit_code == 1
    lines = journal.read_bytes().splitlines(keepends=True)
    number = next(n for n, line in enumerate(lines) if b'"i":3,"ok":true' in line)
    lines[number] = lines[number].replace(b'"i":3', b'"i":4')  # as the operator did
    journal.write_bytes(b"".join(lines))
    places.fake.reset_calls()

    result = places.invoke("provision", str(plan), "--resume", str(journal))

    assert result.exit_code == 2
    assert f"{journal}, line {number + 1}: not a journal line as written" in result.stderr
    assert places.fake.calls == []


def test_a_success_line_of_another_item_is_refused_before_any_call(
    places: Served, plan: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    writer = Journal.create(journal, Fingerprint.of(plan), ITEMS)
    writer.close()
    # A line as a run writes it (its sum right), but item 5's call is not item 3's.
    with journal.open("ab") as file:
        file.write(_line({"i": 3, "ok": True, "call": ["add_robot_to_room", "room-3", "@RBT#1"]}))

    result = places.invoke("provision", str(plan), "--resume", str(journal))

    assert result.exit_code == 2
    assert (
        f'{journal}, line 2: item 3 succeeded as ["add_robot_to_room", "room-3", "@RBT#1"],'
        ' but the plan\'s item 3 is ["add_robot_to_room", "room-2", "@RBT#1"]'
    ) in result.stderr
    assert places.fake.calls == []


def test_a_group_success_line_for_another_group_is_refused(
    places: Served, plan: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    Journal.create(journal, Fingerprint.of(plan), ITEMS).close()
    with journal.open("ab") as file:
        call = ["add_robots_to_live_group", "@TGS#other", ["@RBT#1"]]
        file.write(_line({"i": ITEMS - 1, "ok": True, "call": call}))

    result = places.invoke("provision", str(plan), "--resume", str(journal))

    assert result.exit_code == 2
    assert f"item {ITEMS - 1} succeeded as" in result.stderr
    assert f"to live group {GROUP}" in result.stderr
    assert places.fake.calls == []


def _mutations(lines: list[bytes]) -> st.SearchStrategy[tuple[str, int, int]]:
    return st.tuples(
        st.sampled_from(["edit", "drop", "duplicate", "swap", "ok"]),
        st.integers(0, len(lines) - 1),
        st.integers(0, 200),
    )


def _mutate(lines: list[bytes], kind: str, at: int, byte: int) -> list[bytes]:
    lines = list(lines)
    line = lines[at]
    if kind == "edit":  # one byte changed, the newline kept
        where = byte % (len(line) - 1)
        lines[at] = line[:where] + bytes([(line[where] + 1 + byte) % 256]) + line[where + 1 :]
    elif kind == "ok":  # a failure said to be a success, and nothing else touched
        lines[at] = line.replace(b'"ok":false', b'"ok":true')
    elif kind == "drop":
        del lines[at]
    elif kind == "duplicate":
        lines.insert(at, line)
    elif at + 1 < len(lines):
        lines[at], lines[at + 1] = lines[at + 1], lines[at]
    return lines


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_single_edited_dropped_duplicated_or_reordered_line_refuses_or_ends_as_planned(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    tmp = tmp_path_factory.mktemp("journal")
    plan = tmp / "plan.csv"
    plan.write_text(PLAN, encoding="utf-8")
    journal = tmp / "journal"
    fake = arranged(FakeTencentChat(rate_limit=None))
    with fake_in_thread(fake) as base_url:

        def run(*args: str) -> Any:
            return invoke(
                *("--base-url", base_url, "--sdkappid", str(fake.sdkappid)),
                *("--secret-key", fake.secret_key, "provision", str(plan), *args),
            )

        # A first run with failures, so the journal holds both kinds of end lines.
        fake.fail_next(Endpoint.ROOM_ADD_ROBOT, 100002, times=2)
        fake.fail_next(Endpoint.LIVE_GROUP_ADD_ROBOTS, 10002)  # then retried: succeeds
        assert run("--journal", str(journal)).exit_code == 1
        lines = journal.read_bytes().splitlines(keepends=True)
        kind, at, byte = data.draw(_mutations(lines))
        journal.write_bytes(b"".join(_mutate(lines, kind, at, byte)))
        fake.reset_calls()

        resumed = run("--resume", str(journal))

        if resumed.exit_code == 2:  # refused: nothing sent
            assert "error:" in resumed.stderr
            assert items_sent(fake) == []
        else:
            assert resumed.exit_code == 0, (kind, at, resumed.output)
            assert as_planned(fake)


# -- 2. one run per journal ------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--resume", "--journal"])
def test_a_journal_held_by_a_run_is_refused_to_another(
    places: Served, plan: Path, tmp_path: Path, option: str
) -> None:
    journal = tmp_path / "journal"
    held = Journal.create(journal, Fingerprint.of(plan), ITEMS)  # a run still going
    try:
        before = journal.read_bytes()
        result = places.invoke("provision", str(plan), option, str(journal))
    finally:
        held.close()

    assert result.exit_code == 2
    assert f"{journal} is in use by another provision run" in result.stderr
    assert places.fake.calls == []
    assert journal.read_bytes() == before
    # Once the first run lets it go, it can be resumed.
    assert places.invoke("provision", str(plan), "--resume", str(journal)).exit_code == 0
    assert as_planned(places.fake)


# -- 6. a journal that cannot be written -----------------------------------------------------


def test_a_journal_on_a_full_disk_names_the_journal_not_the_plan(
    places: Served, plan: Path
) -> None:
    result = places.invoke("provision", str(plan), "--journal", "/dev/full")

    assert result.exit_code == 2
    assert "/dev/full: cannot write the journal: No space left on device" in result.stderr
    assert "plan" not in result.stderr.replace(str(plan), "")
    assert places.fake.calls == []


def test_a_journal_that_fills_up_mid_run_stops_it_with_a_report(plan: Path, tmp_path: Path) -> None:
    rooms = [f"room-{i:03d}" for i in range(60)]
    plan.write_text("user_id,rooms\n" + "".join(f"@RBT#1,{room}\n" for room in rooms))
    journal = tmp_path / "journal"
    fake = FakeTencentChat(rate_limit=None)
    for room in rooms:
        fake.create_room(room)
    limit = 3000  # bytes: the header and some thirty lines

    def small_files() -> None:  # the disk fills up: writes past the limit fail (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    with fake_in_thread(fake) as base_url:
        args = ["--base-url", base_url, "--sdkappid", str(fake.sdkappid)]
        args += ["--secret-key", fake.secret_key, "provision", str(plan)]
        done = subprocess.run(
            [sys.executable, "-c", ENTRY, *args, "--journal", str(journal)],
            capture_output=True,
            text=True,
            preexec_fn=small_files,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        # EFBIG, or a line cut short by it (said as the disk full).
        reasons = ("File too large", "No space left on device")
        assert any(
            f"error: cannot write the journal {journal}: {reason}" in done.stderr
            for reason in reasons
        ), done.stderr
        assert "Traceback" not in done.stderr
        assert "provision: " in done.stdout  # the report of what was done
        assert "To carry on (what is done is not sent again)" in done.stdout
        assert len(fake.robots) == 1
        assert 0 < sum(len(fake.room_members(room)) for room in rooms) < len(rooms)

        # With room on the disk, the run is carried on to the end.
        resumed = invoke(*args, "--resume", str(journal))
        assert resumed.exit_code == 0, resumed.output
        assert all(fake.room_members(room) == ["@RBT#1"] for room in rooms)


# -- 8. the app's robot limit ----------------------------------------------------------------


def test_a_plan_past_the_apps_robot_limit_is_refused_before_any_creation(
    served: Served, tmp_path: Path
) -> None:
    for n in range(15):
        served.fake.create_robot(f"@RBT#old{n:02d}")
    plan = tmp_path / "plan.csv"
    plan.write_text("user_id\n" + "".join(f"@RBT#new{n}\n" for n in range(6)) + "@RBT#old00\n")

    result = served.invoke("--json", "provision", str(plan))

    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["error"]["class"] == "RobotLimitError"
    assert report["error"]["message"].startswith(
        "the plan creates 6 new robots and the app has 15 already: 21, over the 20"
    )
    assert [c.endpoint for c in served.fake.calls] == [Endpoint.GET_ALL_ROBOTS]
    assert len(served.fake.robots) == 15

    # A quota Tencent raised is named on the command line: not refused here, so the
    # fake (which keeps to the documented 20) refuses the 21st robot itself.
    served.fake.reset_calls()
    raised = served.invoke("provision", str(plan), "--robot-limit", "21")
    assert raised.exit_code == 1, raised.output
    assert "error 10008" in raised.stdout
    assert len(served.fake.robots) == 20


# -- 4, 11, 17, 18: what the command says ----------------------------------------------------


def test_a_bad_plan_with_json_is_one_failure_object(tmp_path: Path) -> None:
    plan = tmp_path / "plan.csv"
    plan.write_text("user_id\nRBT#1\n")
    result = invoke("provision", str(plan), "--json")

    assert result.exit_code == 2
    assert json.loads(result.stdout) == {
        "ok": False,
        "error": {
            "class": "PlanError",
            "code": None,
            "message": result.stderr.removeprefix("error: ").rstrip("\n"),
        },
        "exit_code": 2,
    }


def test_a_signal_while_the_plan_is_read_says_nothing_was_sent(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    import tencent_chat_robots.cli._provision as provision_module

    def interrupted(path: Path) -> object:
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("the signal should have stopped the reading")

    monkeypatch.setattr(provision_module, "load_plan", interrupted)
    plan = tmp_path / "plan.csv"
    plan.write_text(PLAN)

    text = served.invoke("provision", str(plan))
    assert text.exit_code == 130
    assert "provision: interrupted by SIGINT while the plan was read: nothing sent" in text.stdout
    assert "(0 items)" not in text.stdout
    as_json = json.loads(served.invoke("provision", str(plan), "--json").stdout)
    assert (as_json["items"], as_json["not_started"], as_json["interrupted"]) == (
        None,
        None,
        "SIGINT",
    )


def test_progress_is_a_line_at_a_time_when_the_output_is_not_a_terminal(
    places: Served, plan: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_context, "PROGRESS_EVERY", 0.0)
    result = places.invoke("provision", str(plan))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "Creating robots: 2/2 done, 0 s" in lines
    assert "Adding to rooms and groups: 7/7 done, 0 s" in lines


@pytest.mark.parametrize(("rate", "warned"), [("250", True), ("191", True), ("190", False)])
def test_a_pace_above_95_percent_of_the_documented_rate_is_warned_of(
    places: Served, plan: Path, rate: str, warned: bool
) -> None:
    result = places.invoke("provision", str(plan), "--rate-limit", rate)

    assert result.exit_code == 0, result.output
    warning = f"warning: --rate-limit {rate} paces create_robot at"
    assert (warning in result.stderr) is warned
    assert "rate_limit=" not in result.stderr  # the SDK's own wording is not repeated


# -- hostile journals and plans (found by a hostile review) ----------------------------------


@pytest.mark.parametrize(
    "record",
    [
        # A success with an error's fields: no run writes one.
        {"i": 0, "ok": True, "call": ["create_robot", "@RBT#1"], "error": "X", "message": "m"},
        # Nested past what the JSON reader takes (a RecursionError, not a crash).
        {"i": 0, "ok": True, "call": [], "deep": "NESTED"},
    ],
)
def test_a_hostile_line_with_a_right_sum_is_refused_with_exit_2(
    places: Served, plan: Path, tmp_path: Path, record: dict[str, Any]
) -> None:
    journal = tmp_path / "journal"
    Journal.create(journal, Fingerprint.of(plan), ITEMS).close()
    line = _line(record).replace(b'"NESTED"', b"[" * 100_000 + b"]" * 100_000)
    if line != _line(record):  # re-summed after the replacement, as a forger would
        body = line[: line.rindex(b',"sum":"')]
        line = _line_with_sum(body)
    with journal.open("ab") as file:
        file.write(line)

    result = places.invoke("provision", str(plan), "--resume", str(journal), "--json")

    assert result.exit_code == 2, result.output
    failure = json.loads(result.stdout)
    assert failure["error"]["class"] == "JournalError"
    assert f"{journal}, line 2: not a journal" in failure["error"]["message"]
    assert len(failure["error"]["message"]) < 500  # the line is shown cut short
    assert places.fake.calls == []


def _line_with_sum(body: bytes) -> bytes:
    return body + b',"sum":"' + _sum(body) + b'"}\n'


def test_a_group_line_of_another_group_is_refused_by_its_number(
    places: Served, plan: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    Journal.create(journal, Fingerprint.of(plan), ITEMS).close()
    with journal.open("ab") as file:
        file.write(_line({"start": ITEMS - 1}))
        call = ["add_robots_to_live_group", "@TGS#other", ["@RBT#1"]]
        file.write(_line({"i": ITEMS - 1, "ok": True, "call": call}))

    result = places.invoke("provision", str(plan), "--resume", str(journal))

    assert result.exit_code == 2
    assert (
        f'{journal}, line 3: item {ITEMS - 1} succeeded as ["add_robots_to_live_group",'
        f' "@TGS#other", ["@RBT#1"]], but the plan\'s item {ITEMS - 1} adds @RBT#1, @RBT#2'
        f" to live group {GROUP}"
    ) in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"robots": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deep to read"),
        ('{"robots": [{"user_id": "@RBT#1", "nick": ' + "9" * 5000 + "}]}", "not a plan:"),
    ],
)
def test_a_hostile_json_plan_is_refused_with_exit_2(
    tmp_path: Path, text: str, message: str
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(text)
    result = invoke("provision", str(plan), "--json")

    assert result.exit_code == 2
    failure = json.loads(result.stdout)
    assert failure["error"]["class"] == "PlanError"
    assert message in failure["error"]["message"]


def test_a_multi_line_row_is_named_by_its_first_line(tmp_path: Path) -> None:
    plan = tmp_path / "plan.csv"
    plan.write_bytes(b'\xef\xbb\xbfuser_id,nick\r\n@RBT#1,"a\r\nb",extra\r\n')
    result = invoke("provision", str(plan))

    assert result.exit_code == 2
    assert "line 2: 3 cells, but the header has 2" in result.stderr


def test_a_cell_past_the_csv_limit_says_what_to_do(tmp_path: Path) -> None:
    plan = tmp_path / "plan.csv"
    rooms = ";".join(f"room-{n}" for n in range(20_000))  # ~200,000 characters
    plan.write_text(f"user_id,rooms\n@RBT#1,{rooms}\n")
    result = invoke("provision", str(plan))

    assert result.exit_code == 2
    assert "line 2: not valid CSV (field larger than field limit" in result.stderr
    assert "put the rooms of a robot on rows of their own" in result.stderr


def test_a_signal_while_the_journal_is_checked_says_so(
    places: Served, plan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    import tencent_chat_robots.cli._provision as provision_module

    journal = tmp_path / "journal"
    assert places.invoke("provision", str(plan), "--journal", str(journal)).exit_code == 0
    places.fake.reset_calls()

    def interrupted(plan: Any, earlier: Any) -> object:
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("the signal should have stopped the check")

    monkeypatch.setattr(provision_module, "_check_earlier", interrupted)
    result = places.invoke("provision", str(plan), "--resume", str(journal))

    assert result.exit_code == 130
    assert (
        "provision: interrupted by SIGINT while the journal was read and checked against the"
        " plan: nothing sent"
    ) in result.stdout
    assert places.fake.calls == []
    monkeypatch.undo()
    # The journal was let go: it is resumed at once.
    assert places.invoke("provision", str(plan), "--resume", str(journal)).exit_code == 0


class _FullDisk:
    """A temporary file on a disk that is full."""

    def write(self, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def test_a_full_disk_for_the_json_lists_keeps_the_first_few_and_says_so(
    places: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tencent_chat_robots.cli import _report

    monkeypatch.setattr(_report.tempfile, "TemporaryFile", _FullDisk)
    plan = tmp_path / "plan.csv"
    plan.write_text("user_id,rooms\n" + "".join(f"@RBT#1,gone-{n:02d}\n" for n in range(25)))

    result = places.invoke("provision", str(plan), "--json")

    assert result.exit_code == 1  # failures: the run went to its end
    report = json.loads(result.stdout)
    assert report["failed"] == 25
    # In plan order, in the shape of the full lists (the creation is item 0).
    assert [(f["index"], f["item"]) for f in report["failures"]] == [
        (1 + n, f"room add gone-{n:02d} @RBT#1") for n in range(20)
    ]
    assert report["warnings"] == [
        "the lists name only the first 20 of each kind: the full lists could not be kept"
        " (No space left on device)"
    ]


def test_a_shared_limiter_that_is_down_stops_the_run_at_its_first_failure(
    served: Served, tmp_path: Path
) -> None:
    rooms = [f"room-{n:02d}" for n in range(60)]
    for room in rooms:
        served.fake.create_room(room)
    plan = tmp_path / "plan.csv"
    plan.write_text("user_id,rooms\n" + "".join(f"@RBT#1,{room}\n" for room in rooms))
    journal = tmp_path / "journal"
    served.fake.fail_next(Endpoint.ROOM_ADD_ROBOT, 100002, times=len(rooms))
    assert served.invoke("provision", str(plan), "--journal", str(journal)).exit_code == 1
    served.fake.reset_calls()

    down = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    result = served.invoke(
        "provision", str(plan), "--resume", str(journal), "--redis-url", down, "--json"
    )

    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert report["error"]["class"] == "LimiterUnavailableError"
    assert report["errors"] == {"LimiterUnavailableError": report["failed"]}
    assert 0 < report["failed"] < len(rooms)  # not one failure a placement
    assert report["not_started"] > 0
    assert served.fake.calls == []  # nothing goes unpaced

    assert served.invoke("provision", str(plan), "--resume", str(journal)).exit_code == 0
    assert all(served.fake.room_members(room) == ["@RBT#1"] for room in rooms)
