"""``provision --journal FILE`` and ``--resume FILE``: the journal's format and its use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tencent_chat_robots import Call, Endpoint
from tencent_chat_robots._exceptions import NotFoundError
from tencent_chat_robots.cli._journal import Fingerprint, Journal, JournalError, _line
from tencent_chat_robots.cli._plan import load_plan
from tencent_chat_robots.cli._provision import _added_to_groups

from .conftest import Served

GROUP = "@TGS#live1"
ROOMS = ["room-1", "room-2", "room-3"]
PLAN = (
    "user_id,nick,rooms,live_groups\n"
    + "".join(f"@RBT#1,One,{room},{GROUP}\n" for room in ROOMS)
    + "".join(f"@RBT#2,,{room},{GROUP}\n" for room in ROOMS)
)
ITEMS = 2 + 6 + 1  # two creations, six room placements, one live-group call


@pytest.fixture
def places(served: Served) -> Served:
    for room in ROOMS:
        served.fake.create_room(room)
    served.fake.create_live_group(GROUP)
    return served


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.csv"
    path.write_text(PLAN, encoding="utf-8")
    return path


def records(journal: Path) -> list[dict[str, Any]]:
    """The journal's records, each without its line's sum."""
    lines = journal.read_text(encoding="utf-8").splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "sum"} for line in lines]


def provision(served: Served, *args: str | Path) -> dict[str, Any]:
    result = served.invoke("--json", "provision", *map(str, args))
    report: dict[str, Any] = json.loads(result.stdout)
    report["exit_code"] = result.exit_code
    return report


def sent(served: Served) -> list[str]:
    """What the fake received, as report items."""
    items = []
    for call in served.fake.calls:
        body = call.body
        if call.endpoint == Endpoint.GET_ALL_ROBOTS:  # how many robots exist: not an item
            continue
        if call.endpoint == Endpoint.CREATE_ROBOT:
            items.append(f"create {body['UserID']}")
        elif call.endpoint == Endpoint.ROOM_ADD_ROBOT:
            items.append(f"room add {body['RoomId']} {body['Member_Account']}")
        else:
            items.append(f"group add {body['GroupId']} {' '.join(body['Member_Account'])}")
    return sorted(items)


# -- the file ------------------------------------------------------------------------------


def write_journal(path: Path, plan: Path) -> None:
    journal = Journal.create(path, Fingerprint.of(plan), ITEMS)
    journal.started(0)
    journal.started(2)
    journal.started(3)
    journal.finished(0, Call.create_robot("@RBT#1", nick="One"), None)
    journal.finished(3, Call.add_robot_to_room("room-2", "@RBT#1"), NotFoundError(100004, "x"))
    journal.started(8)
    journal.finished(8, Call.add_robots_to_live_group(GROUP, ["@RBT#1"]), None)
    journal.close()


def test_a_journal_reads_back_what_it_recorded(tmp_path: Path, plan: Path) -> None:
    path = tmp_path / "journal"
    write_journal(path, plan)

    lines = records(path)
    assert lines[0] == {
        "journal": "tencent-chat-robots provision",
        "version": 2,
        "plan": str(plan.resolve()),
        "size": plan.stat().st_size,
        "sha256": Fingerprint.of(plan).sha256,
        "items": ITEMS,
    }
    assert lines[1:4] == [{"start": 0}, {"start": 2}, {"start": 3}]
    assert lines[4] == {"i": 0, "ok": True, "call": ["create_robot", "@RBT#1", ["nick", "One"]]}
    assert lines[5] == {
        "i": 3,
        "ok": False,
        "call": ["add_robot_to_room", "room-2", "@RBT#1"],
        "error": "NotFoundError",
        "code": 100004,
        "message": "error 100004: x",
    }
    assert len(path.read_bytes().splitlines()[1]) < 40  # a million of them

    journal, earlier = Journal.resume(path, Fingerprint.of(plan), ITEMS, keys_from=8)
    journal.close()
    assert [i for i in range(ITEMS) if earlier.done[i]] == [0, 8]
    assert [i for i in range(ITEMS) if earlier.unfinished[i]] == [2]  # 3 failed: finished
    assert earlier.ok_keys == {8: [["add_robots_to_live_group", GROUP, ["@RBT#1"]]]}


# A kill cuts a line short before its newline; a whole record without it is dropped too.
@pytest.mark.parametrize("tail", [b'{"i":2,"ok":tr', b"\x00\x00\x00", b'{"start":5}'])
def test_a_last_line_cut_short_is_dropped_and_cut_off(
    tmp_path: Path, plan: Path, tail: bytes
) -> None:
    path = tmp_path / "journal"
    write_journal(path, plan)
    sound = path.read_bytes()
    with path.open("ab") as file:
        file.write(tail)

    journal, earlier = Journal.resume(path, Fingerprint.of(plan), ITEMS, keys_from=8)
    assert path.read_bytes() == sound  # cut back before anything is appended
    journal.started(5)
    journal.close()

    assert path.read_bytes().startswith(sound)
    assert records(path)[len(sound.splitlines()) :] == [{"start": 5}]
    assert earlier.unfinished[2]  # the cut line said nothing
    assert not earlier.unfinished[5]


@pytest.mark.parametrize(
    "tail",
    [b'{"i":1,"ok":"yes","call":"x"}\n', b'{"start":\n', b"\n", _line({"start": 1}) + b"[]\n"],
)
def test_a_bad_last_line_with_its_newline_is_refused(
    tmp_path: Path, plan: Path, tail: bytes
) -> None:
    """A kill cannot cut a line short after its newline: the bad line is no cut line."""
    path = tmp_path / "journal"
    write_journal(path, plan)
    with path.open("ab") as file:
        file.write(tail)
    before = path.read_bytes()
    number = before.count(b"\n")

    with pytest.raises(JournalError, match=rf"journal, line {number}: not a journal line as"):
        Journal.resume(path, Fingerprint.of(plan), ITEMS, keys_from=8)
    assert path.read_bytes() == before  # left as it was


def test_a_garbled_line_before_the_last_is_refused(tmp_path: Path, plan: Path) -> None:
    path = tmp_path / "journal"
    write_journal(path, plan)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"start":3', b'"start":4')  # a hand edit: its sum is wrong
    path.write_bytes(b"".join(lines))

    with pytest.raises(JournalError, match=r"journal, line 4: not a journal line as written"):
        Journal.resume(path, Fingerprint.of(plan), ITEMS, keys_from=8)
    assert path.read_bytes() == b"".join(lines)  # left as it was


@pytest.mark.parametrize(
    "record",
    [
        {"i": 99, "ok": True, "call": []},
        {"i": 1, "ok": 1, "call": []},
        {"what": 1},
        # Item 0 succeeded already, as another call.
        {"i": 0, "ok": True, "call": ["create_robot", "@RBT#2"]},
    ],
)
def test_a_record_that_does_not_fit_the_plan_is_refused(
    tmp_path: Path, plan: Path, record: dict[str, Any]
) -> None:
    path = tmp_path / "journal"
    write_journal(path, plan)
    with path.open("ab") as file:
        file.write(_line(record) + _line({"start": 1}))
    with pytest.raises(JournalError, match="not a journal record"):
        Journal.resume(path, Fingerprint.of(plan), ITEMS, keys_from=8)


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path, plan: Path) -> None:
    path = tmp_path / "journal"
    path.write_text("user_id\n@RBT#1\n")
    with pytest.raises(JournalError, match="is not a provision journal"):
        Journal.resume(path, Fingerprint.of(plan), ITEMS, keys_from=8)
    assert path.read_text() == "user_id\n@RBT#1\n"


# -- provision --journal / --resume ------------------------------------------------------------


def test_resume_retries_what_failed_and_reports_on_both_runs(
    places: Served, plan: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    places.fake.fail_next(Endpoint.ROOM_ADD_ROBOT, 100002, times=2)
    first = provision(places, plan, "--journal", journal)

    assert first["exit_code"] == 1
    assert (first["succeeded"], first["failed"]) == (ITEMS - 2, 2)
    assert first["journal"] == str(journal)
    failed = {f["item"] for f in first["failures"]}
    done = records(journal)
    assert len(done) == 1 + 2 * ITEMS  # the header, a start and an end line per item
    assert sum(1 for r in done if r.get("ok") is False) == 2

    places.fake.reset_calls()
    second = provision(places, plan, "--resume", journal)

    assert second["exit_code"] == 0
    assert sent(places) == sorted(failed)  # only what had failed
    assert (second["succeeded_earlier"], second["succeeded"]) == (ITEMS - 2, 2)
    assert second["failed"] == second["not_started"] == second["unfinished_earlier"] == 0
    assert second["items"] == ITEMS
    assert len(records(journal)) == len(done) + 2 * 2  # appended to

    places.fake.reset_calls()
    third = provision(places, plan, "--resume", journal)
    assert (third["exit_code"], third["succeeded_earlier"], third["succeeded"]) == (0, ITEMS, 0)
    assert places.fake.calls == []


def test_items_started_and_never_finished_are_counted_and_sent_again(
    places: Served, plan: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    provision(places, plan, "--journal", journal)
    # As if killed with two room adds on the wire: their start lines, no end lines.
    lines = journal.read_text().splitlines(keepends=True)
    ends = [n for n, line in enumerate(lines) if '"call":["add_robot_to_room"' in line]
    lost = {json.loads(lines[n])["i"] for n in ends[:2]}
    journal.write_text("".join(line for n, line in enumerate(lines) if n not in ends[:2]))

    places.fake.reset_calls()
    resumed = places.invoke("provision", str(plan), "--resume", str(journal))

    assert resumed.exit_code == 0, resumed.output
    assert f"{ITEMS - 2} succeeded earlier, 2 succeeded, 0 failed" in resumed.stdout
    assert "started in an earlier run but never finished: 2 (perhaps sent; re-sent now)" in (
        resumed.stdout
    )
    assert len(sent(places)) == 2
    assert {r["i"] for r in records(journal)[len(lines) - 2 :] if "ok" in r} == lost


def test_a_live_group_call_without_a_robot_is_completed_on_resume(
    places: Served, plan: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    places.fake.fail_next(Endpoint.CREATE_ROBOT, 10008)  # one of the two creations
    first = provision(places, plan, "--journal", journal)
    [lost] = [f["item"].removeprefix("create ") for f in first["failures"]]
    [kept] = {"@RBT#1", "@RBT#2"} - {lost}
    assert first["skipped"] == 3  # its rooms
    assert first["left_out"] == 1  # its place in the group's call
    assert places.fake.live_group_members(GROUP) == [kept]

    places.fake.reset_calls()
    second = provision(places, plan, "--resume", journal)

    assert second["exit_code"] == 0
    assert sent(places) == sorted(
        [f"create {lost}", f"group add {GROUP} {lost}"]
        + [f"room add {room} {lost}" for room in ROOMS]
    )
    assert sorted(places.fake.live_group_members(GROUP)) == ["@RBT#1", "@RBT#2"]
    # The group's call of the first run succeeded, but without the robot: not done then.
    assert (second["succeeded_earlier"], second["succeeded"]) == (1 + 3, 1 + 3 + 1)


def test_a_journal_of_another_plan_is_refused(places: Served, plan: Path, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    provision(places, plan, "--journal", journal)
    before = journal.read_bytes()
    plan.write_text(PLAN + "@RBT#3,,room-1,\n", encoding="utf-8")
    places.fake.reset_calls()

    result = places.invoke("provision", str(plan), "--resume", str(journal))

    assert result.exit_code == 2
    assert "is the journal of another plan, or of this one before it changed" in result.stderr
    assert places.fake.calls == []
    assert journal.read_bytes() == before


def test_journal_refuses_a_file_that_is_not_empty(
    places: Served, plan: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    journal.write_text("something\n")
    result = places.invoke("provision", str(plan), "--journal", str(journal))
    assert result.exit_code == 2
    assert f"{journal} exists and is not empty; to carry on the run it records, use --resume" in (
        result.stderr
    )
    assert journal.read_text() == "something\n"
    assert places.fake.calls == []


def test_journal_and_resume_do_not_go_together(places: Served, plan: Path, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    journal.touch()
    result = places.invoke("provision", str(plan), "--journal", "j2", "--resume", str(journal))
    assert result.exit_code == 2
    assert "--journal and --resume do not go together" in result.stderr
    assert places.fake.calls == []


def test_the_report_points_to_the_journal_for_the_failures_it_does_not_name(
    places: Served, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.csv"
    plan.write_text("user_id,rooms\n" + "".join(f"@RBT#1,gone-{i:02d}\n" for i in range(25)))
    journal = tmp_path / "journal"

    result = places.invoke("provision", str(plan), "--journal", str(journal))

    assert result.exit_code == 1
    assert f"  and 5 more; the journal {journal} has them all" in result.stdout
    failures = [r for r in records(journal) if r.get("ok") is False]
    assert sorted(r["call"][1] for r in failures) == [f"gone-{i:02d}" for i in range(25)]
    assert {r["error"] for r in failures} == {"NotFoundError"}


# -- the counts across runs --------------------------------------------------------------


def report_of(result: Result, json_output: bool) -> dict[str, Any]:
    """The counts of a report, from ``--json`` or from the text."""
    if json_output:
        report: dict[str, Any] = json.loads(result.stdout)
        return report
    line = next(line for line in result.stdout.splitlines() if line.startswith("provision:"))
    counts = {kind: int(n) for n, kind in COUNT.findall(line)}
    left_out = LEFT_OUT.search(result.stdout)
    return {
        "items": int(ITEMS_IN_TEXT.findall(line)[-1]),
        "succeeded_earlier": counts.get("succeeded earlier", 0),
        "succeeded": counts["succeeded"],
        "failed": counts["failed"],
        "skipped": counts["skipped"],
        "not_started": counts.get("not started", 0),
        "cancelled": counts.get("cancelled", 0),
        "left_out": int(left_out[1]) if left_out else 0,
    }


COUNT = re.compile(r"(\d+) (succeeded earlier|succeeded|failed|skipped|not started|cancelled)")
ITEMS_IN_TEXT = re.compile(r"\((\d+) items\)")
LEFT_OUT = re.compile(r"robots left out of live-group calls \(not created\): (\d+)")
KINDS = ("succeeded_earlier", "succeeded", "failed", "skipped", "cancelled", "not_started")


@pytest.mark.parametrize("json_output", [True, False], ids=["json", "text"])
def test_the_counts_add_up_to_the_items_in_first_and_resumed_runs(
    places: Served, tmp_path: Path, json_output: bool
) -> None:
    plan = tmp_path / "plan.csv"
    robots = ["@RBT#1", "@RBT#2", "@RBT#3"]
    plan.write_text(
        "user_id,rooms,live_groups\n" + "".join(f"{r},room-1,{GROUP}\n" for r in robots)
    )
    journal = tmp_path / "journal"

    def provision_again(*args: str | Path) -> dict[str, Any]:
        options = ["--json"] if json_output else []
        result = places.invoke(*options, "provision", str(plan), *map(str, args))
        report = report_of(result, json_output)
        assert sum(report[kind] for kind in KINDS) == report["items"] == 3 + 3 + 1, report
        report["exit_code"] = result.exit_code
        return report

    places.fake.fail_next(Endpoint.CREATE_ROBOT, 10008)  # one of the three
    first = provision_again("--journal", journal)
    # Its room add skipped; the group's call went for the two others, without it.
    assert (first["succeeded"], first["failed"]) == (2 + 2 + 1, 1)
    assert (first["skipped"], first["left_out"]) == (1, 1)
    assert first["exit_code"] == 1

    places.fake.fail_next(Endpoint.CREATE_ROBOT, 10008)  # the same robot's, again
    second = provision_again("--resume", journal)
    # The group's call was left with that robot alone: skipped whole, no call.
    assert (second["succeeded_earlier"], second["succeeded"], second["failed"]) == (4, 0, 1)
    assert (second["skipped"], second["left_out"]) == (1 + 1, 0)
    assert second["exit_code"] == 1

    third = provision_again("--resume", journal)
    assert (third["succeeded_earlier"], third["succeeded"], third["exit_code"]) == (4, 3, 0)
    assert sorted(places.fake.live_group_members(GROUP)) == robots


# -- items started and never finished --------------------------------------------------------


def test_a_group_call_cut_off_in_a_resumed_run_is_counted_unfinished(
    places: Served, plan: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    places.fake.fail_next(Endpoint.CREATE_ROBOT, 10008)  # one of the two creations
    first = provision(places, plan, "--journal", journal)
    [lost] = [f["item"].removeprefix("create ") for f in first["failures"]]
    # A second run created it, and was killed with the group's call for it on the wire.
    places.fake.create_robot(lost)
    second, _ = Journal.resume(journal, Fingerprint.of(plan), ITEMS, keys_from=8)
    index = 0 if lost == "@RBT#1" else 1
    second.started(index)
    second.finished(index, Call.create_robot(lost, nick="One" if index == 0 else None), None)
    second.started(8)
    second.close()

    places.fake.reset_calls()
    third = provision(places, plan, "--resume", journal)

    assert third["unfinished_earlier"] == 1  # the group's call: perhaps sent
    assert third["exit_code"] == 0
    assert (third["succeeded_earlier"], third["succeeded"]) == (1 + 3 + 1, 3 + 1)
    assert sorted(places.fake.live_group_members(GROUP)) == ["@RBT#1", "@RBT#2"]


def test_an_item_done_in_full_is_not_unfinished_whatever_follows(
    tmp_path: Path, plan: Path
) -> None:
    path = tmp_path / "journal"
    journal = Journal.create(path, Fingerprint.of(plan), ITEMS)
    journal.started(0)
    journal.finished(0, Call.create_robot("@RBT#1", nick="One"), None)
    journal.started(8)
    journal.finished(8, Call.add_robots_to_live_group(GROUP, ["@RBT#1", "@RBT#2"]), None)
    journal.started(0)  # lines no run writes (a journal edited by hand)
    journal.started(8)
    journal.started(3)  # and one that is unfinished
    journal.close()

    _, earlier = Journal.resume(path, Fingerprint.of(plan), ITEMS, keys_from=8)
    _added_to_groups(load_plan(plan), earlier)

    assert [i for i in range(ITEMS) if earlier.done[i]] == [0, 8]
    assert [i for i in range(ITEMS) if earlier.unfinished[i]] == [3]


# -- the journal is not the plan -------------------------------------------------------------


@pytest.mark.parametrize("option", ["--journal", "--resume"])
def test_the_plan_as_its_own_journal_is_refused_first(
    places: Served, plan: Path, option: str
) -> None:
    result = places.invoke("provision", str(plan), option, str(plan))

    assert result.exit_code == 2
    assert f"error: {plan} is the plan itself: the journal is a file of its own" in (result.stderr)
    assert "use --resume" not in result.stderr
    assert "not a provision journal" not in result.stderr
    assert plan.read_text(encoding="utf-8") == PLAN
    assert places.fake.calls == []
