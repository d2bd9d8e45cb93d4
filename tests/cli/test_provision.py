from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tencent_chat_robots import Endpoint
from tencent_chat_robots.cli import _provision
from tencent_chat_robots.cli._plan import Plan, load_plan

from .conftest import Served, invoke

GROUP = "@TGS#live1"


def write(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return str(path)


def json_plan(*robots: Mapping[str, object]) -> str:
    return json.dumps({"robots": [dict(r) for r in robots]})


@pytest.fixture
def places(served: Served) -> Served:
    served.fake.create_room("room-1")
    served.fake.create_room("room-2")
    served.fake.create_live_group(GROUP)
    return served


def group_add_calls(served: Served) -> int:
    return sum(c.endpoint == Endpoint.LIVE_GROUP_ADD_ROBOTS for c in served.fake.calls)


def test_json_plan(places: Served, tmp_path: Path) -> None:
    plan = json_plan(
        {
            "user_id": "@RBT#001",
            "nick": "Helper",
            "self_signature": "here to help",
            "rooms": ["room-1", "room-2"],
            "live_groups": [GROUP],
        },
        {"user_id": "@RBT#002", "rooms": ["room-1"], "live_groups": [GROUP]},
        {"user_id": "@RBT#003"},
    )
    result = places.invoke("provision", write(tmp_path, "plan.json", plan))

    assert result.exit_code == 0, result.output
    assert "7 succeeded, 0 failed, 0 skipped" in result.stdout
    fake = places.fake
    assert sorted(fake.robots) == ["@RBT#001", "@RBT#002", "@RBT#003"]
    assert fake.robot_profile("@RBT#001") == {"Nick": "Helper", "SelfSignature": "here to help"}
    assert sorted(fake.room_members("room-1")) == ["@RBT#001", "@RBT#002"]
    assert fake.room_members("room-2") == ["@RBT#001"]
    assert sorted(fake.live_group_members(GROUP)) == ["@RBT#001", "@RBT#002"]
    assert group_add_calls(places) == 1  # both robots in one call


def test_csv_plan(places: Served, tmp_path: Path) -> None:
    plan = (
        "\ufeffuser_id,nick,face_url,self_signature,rooms,live_groups\n"  # Excel's BOM
        f"@RBT#001,Helper,https://x/y.png,,room-1;room-2,{GROUP}\n"
        "\n"
        '@RBT#002,"Second, with comma",,,"room-1; room-2",\n'
        "@RBT#003\n"  # a short row: the rest empty
    )
    result = places.invoke("provision", write(tmp_path, "plan.csv", plan))

    assert result.exit_code == 0, result.output
    fake = places.fake
    assert sorted(fake.robots) == ["@RBT#001", "@RBT#002", "@RBT#003"]
    assert fake.robot_profile("@RBT#001") == {"Nick": "Helper", "FaceUrl": "https://x/y.png"}
    assert fake.robot_profile("@RBT#002") == {"Nick": "Second, with comma"}
    assert fake.robot_profile("@RBT#003") == {}
    assert sorted(fake.room_members("room-1")) == ["@RBT#001", "@RBT#002"]
    assert sorted(fake.room_members("room-2")) == ["@RBT#001", "@RBT#002"]
    assert fake.live_group_members(GROUP) == ["@RBT#001"]


@pytest.mark.parametrize(
    "content",
    [json_plan({"user_id": "@RBT#001", "rooms": ["room-1"]}), "user_id,rooms\n@RBT#001,room-1\n"],
)
def test_other_extensions_are_sniffed(places: Served, tmp_path: Path, content: str) -> None:
    result = places.invoke("provision", write(tmp_path, "plan.txt", content))
    assert result.exit_code == 0, result.output
    assert places.fake.room_members("room-1") == ["@RBT#001"]


def test_one_failing_item_is_listed_and_the_rest_done(places: Served, tmp_path: Path) -> None:
    plan = json_plan(
        {"user_id": "@RBT#001", "rooms": ["room-1", "no-such-room"]},
        {"user_id": "@RBT#002", "rooms": ["room-1"], "live_groups": [GROUP]},
    )
    result = places.invoke("provision", write(tmp_path, "plan.json", plan))

    assert result.exit_code == 1
    assert "5 succeeded, 1 failed, 0 skipped" in result.stdout
    failure = next(line for line in result.stdout.splitlines() if "no-such-room" in line)
    assert "room add no-such-room @RBT#001: NotFoundError: error 100004" in failure
    assert sorted(places.fake.room_members("room-1")) == ["@RBT#001", "@RBT#002"]
    assert places.fake.live_group_members(GROUP) == ["@RBT#002"]


def test_json_report(places: Served, tmp_path: Path) -> None:
    plan = json_plan(
        {"user_id": "@RBT#001", "rooms": ["no-such-room"], "live_groups": [GROUP]},
    )
    result = places.invoke("--json", "provision", write(tmp_path, "plan.json", plan))

    assert result.exit_code == 1
    report = json.loads(result.stdout)  # the progress bar went to stderr
    assert report["items"] == 3
    assert (report["succeeded"], report["failed"], report["skipped"]) == (2, 1, 0)
    assert report["not_started"] == report["cancelled"] == report["succeeded_earlier"] == 0
    assert report["left_out"] == 0
    assert report["error"] is None
    assert report["errors"] == {"NotFoundError": 1}
    assert report["skips"] == report["cancellations"] == []
    assert report["journal"] is None
    [failed] = report["failures"]
    assert failed["item"] == "room add no-such-room @RBT#001"
    assert failed["error"] == "NotFoundError"
    assert failed["code"] == 100004
    assert "100004" in failed["message"]


def test_adds_of_a_robot_not_created_are_skipped(places: Served, tmp_path: Path) -> None:
    # Exactly one of the two creations fails; which one depends on arrival order.
    places.fake.fail_next(Endpoint.CREATE_ROBOT, 10008)
    plan = json_plan(
        {"user_id": "@RBT#001", "rooms": ["room-1"], "live_groups": [GROUP]},
        {"user_id": "@RBT#002", "rooms": ["room-1"], "live_groups": [GROUP]},
    )
    result = places.invoke("--json", "provision", write(tmp_path, "plan.json", plan))

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    [failed] = report["failures"]
    assert failed["error"] == "InvalidRequestError"
    lost = failed["item"].removeprefix("create ")
    [kept] = {"@RBT#001", "@RBT#002"} - {lost}
    # The room add is an item skipped; the group's call went, with kept alone.
    assert (report["skipped"], report["left_out"]) == (1, 1)
    assert report["skips"] == [
        {
            "index": 2,
            "item": f"room add room-1 {lost}",
            "reason": f"robot {lost} was not created",
        },
        {
            "index": 4,
            "item": f"group add {GROUP} {lost}",
            "reason": f"robot {lost} was not created; left out of the group's call",
        },
    ]
    assert report["succeeded"] == 3  # kept's creation, room add and group add
    assert add_up(report) == report["items"] == 2 + 2 + 1
    assert places.fake.room_members("room-1") == [kept]
    assert places.fake.live_group_members(GROUP) == [kept]


def add_up(report: Mapping[str, Any]) -> int:
    """The counts that hold every item once."""
    kinds = ("succeeded_earlier", "succeeded", "failed", "skipped", "cancelled", "not_started")
    return sum(report[kind] for kind in kinds)


def test_no_group_call_when_none_of_its_robots_exists(places: Served, tmp_path: Path) -> None:
    places.fake.fail_next(Endpoint.CREATE_ROBOT, 10008)
    plan = json_plan({"user_id": "@RBT#001", "live_groups": [GROUP]})
    result = places.invoke("provision", write(tmp_path, "plan.json", plan))

    assert result.exit_code == 1
    assert "provision: 0 succeeded, 1 failed, 1 skipped (2 items)" in result.stdout
    assert f"group add {GROUP} @RBT#001: robot @RBT#001 was not created" in result.stdout
    assert "left out" not in result.stdout
    assert group_add_calls(places) == 0


def test_a_group_call_none_of_whose_robots_exists_is_one_item_skipped(
    places: Served, tmp_path: Path
) -> None:
    places.fake.fail_next(Endpoint.CREATE_ROBOT, 10008, times=2)
    plan = json_plan(
        {"user_id": "@RBT#001", "live_groups": [GROUP]},
        {"user_id": "@RBT#002", "live_groups": [GROUP]},
    )
    result = places.invoke("--json", "provision", write(tmp_path, "plan.json", plan))

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["failed"], report["skipped"], report["left_out"]) == (2, 1, 0)
    assert report["not_started"] == 0
    assert add_up(report) == report["items"] == 3
    assert report["skips"] == [
        {
            "index": 2,
            "item": f"group add {GROUP} @RBT#001 @RBT#002",
            "reason": "robots @RBT#001, @RBT#002 were not created",
        }
    ]
    assert group_add_calls(places) == 0


MALFORMED = [
    ("plan.json", '{"robots": [', "not valid JSON"),
    ("plan.json", "[]", "must be a JSON object"),
    ("plan.json", '{"bots": []}', 'missing key "robots"'),
    ("plan.json", '{"robots": [], "extra": 1}', "unknown key(s) 'extra'"),
    ("plan.json", '{"robots": []}', "the plan lists no robots"),
    ("plan.json", '{"robots": {"user_id": "@RBT#1"}}', "robots: must be a list"),
    ("plan.json", '{"robots": ["@RBT#1"]}', "robots[0]: must be an object"),
    ("plan.json", json_plan({"nick": "x"}), "robots[0]: user_id is required"),
    ("plan.json", json_plan({"user_id": "bob"}), "robots[0]: UserID (user_id) must start with"),
    ("plan.json", json_plan({"user_id": "@RBT#" + "x" * 30}), "at most 32 UTF-8 bytes"),
    ("plan.json", json_plan({"user_id": "@RBT#1", "nick": 5}), "Nick (nick) must be a string"),
    ("plan.json", json_plan({"user_id": "@RBT#1", "room": ["r"]}), "unknown field(s) room"),
    ("plan.json", json_plan({"user_id": "@RBT#1", "rooms": "r"}), "robots[0].rooms: must be a"),
    ("plan.json", json_plan({"user_id": "@RBT#1", "live_groups": [""]}), ".live_groups[0]:"),
    (
        "plan.json",
        json_plan({"user_id": "@RBT#1", "nick": "a"}, {"user_id": "@RBT#1", "nick": "b"}),
        "robots[1]: nick of @RBT#1 is 'b', but robots[0] gives 'a'",
    ),
    ("plan.csv", "user_id,nick\n@RBT#1,a\n@RBT#2,b\n@RBT#1,c\n", "line 4: nick of @RBT#1 is 'c'"),
    ("plan.csv", "user_id,rooms\n@RBT#1,\n@RBT#2,r\nRBT#3,r\n", "line 4: UserID (user_id) must"),
    ("plan.csv", "", "empty CSV"),
    ("plan.csv", "user_id,nick\n", "the plan lists no robots"),
    ("plan.csv", "@RBT#1,,,,r\n", "the first line must be the header, naming the columns"),
    ("plan.csv", "nick,rooms\nx,r\n", "missing column 'user_id'"),
    ("plan.csv", "user_id,nick\n@RBT#1,a\n,b\n", "line 3: user_id is required"),
    ("plan.csv", "user_id,nick\n@RBT#1,a,extra\n", "line 2: 3 cells, but the header has 2"),
    ("plan.csv", "user_id\nrobot-1\n", "line 2: UserID (user_id) must start with '@RBT#'"),
    ("plan.txt", "user_id,rooms,rooms\n@RBT#1,a,b\n", "appears twice"),
    ("plan.csv", "user_id\n" + "x" * 200_000 + "\n", "not valid CSV (field larger"),
    ("plan.json", json_plan({"user_id": "@RBT#1", "rooms": ["a", " "]}), "robots[0].rooms[1]:"),
    ("plan.csv", 'user_id\n"@RBT#x,\n', "not valid CSV"),
]


@pytest.mark.parametrize(("name", "content", "message"), MALFORMED)
def test_malformed_plan_exits_2_before_any_call(
    served: Served, tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = write(tmp_path, name, content)
    result = served.invoke("provision", path)

    assert result.exit_code == 2
    assert message in result.stderr
    assert name in result.stderr  # the message names the file
    assert "Traceback" not in result.output
    assert served.fake.calls == []


def test_plan_that_is_not_utf8_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_bytes(b"user_id\n\xff\xfe\n")
    result = invoke("provision", str(path))
    assert result.exit_code == 2
    assert "line 2: not UTF-8 text (byte 0xff at byte 1 of the line): save the plan as" in (
        result.stderr
    )


def test_missing_plan_file_exits_2(tmp_path: Path) -> None:
    result = invoke("provision", str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_good_plan_without_credentials_exits_2(tmp_path: Path) -> None:
    result = invoke("provision", write(tmp_path, "plan.json", json_plan({"user_id": "@RBT#1"})))
    assert result.exit_code == 2
    assert "give --sdkappid or set TENCENT_CHAT_SDKAPPID" in result.stderr
    assert "Traceback" not in result.output


ids = st.lists(
    st.text(
        st.characters(blacklist_categories=("Cs", "Z", "Cc"), blacklist_characters=";,\"'"),
        min_size=1,
        max_size=8,
    ),
    max_size=4,
)


@given(rooms=ids, groups=ids)
def test_csv_and_json_plans_agree(rooms: list[str], groups: list[str]) -> None:
    robot = {"user_id": "@RBT#1", "nick": "n", "rooms": rooms, "live_groups": groups}
    csv_text = f"user_id,nick,rooms,live_groups\n@RBT#1,n,{';'.join(rooms)},{';'.join(groups)}\n"
    with tempfile.TemporaryDirectory() as tmp:
        plans = [
            load_plan(Path(write(Path(tmp), "p.json", json_plan(robot)))),
            load_plan(Path(write(Path(tmp), "p.csv", csv_text))),
        ]
        placements = [list(plan.room_placements()) for plan in plans]
    from_json, from_csv = plans
    assert from_json.creates == from_csv.creates
    assert from_json.live_groups == from_csv.live_groups
    assert placements[0] == placements[1] == [(room, "@RBT#1") for room in dict.fromkeys(rooms)]


def test_every_failure_is_listed_with_its_plan_index(places: Served, tmp_path: Path) -> None:
    # The JSON lists them all as they ended (calls finish in any order), each with its
    # item's index: in index order they are the plan's. (It flaked when it wanted the
    # order of arrival to be the plan's, on a loaded machine.)
    missing = [f"gone-{i}" for i in range(6)]
    plan = json_plan({"user_id": "@RBT#001", "rooms": missing})
    result = places.invoke("--json", "provision", write(tmp_path, "plan.json", plan))

    assert result.exit_code == 1
    failures = json.loads(result.stdout)["failures"]
    by_index = sorted((f["index"], f["item"]) for f in failures)
    # Item 0 creates the robot; the placements are items 1 to 6.
    assert by_index == [(i + 1, f"room add {room} @RBT#001") for i, room in enumerate(missing)]


def test_csv_list_cells_split_on_semicolons_only(tmp_path: Path) -> None:
    text = "user_id,rooms\n@RBT#1,room 1; room-2\n"
    plan = load_plan(Path(write(tmp_path, "plan.csv", text)))
    assert list(plan.room_placements()) == [("room 1", "@RBT#1"), ("room-2", "@RBT#1")]


def test_csv_plan_with_a_robot_on_many_rows(places: Served, tmp_path: Path) -> None:
    plan = (
        "user_id,nick,face_url,self_signature,rooms,live_groups\n"
        f"@RBT#001,,,,room-1,{GROUP}\n"
        "@RBT#002,,,,room-1,\n"
        f"@RBT#001,Helper,,,room-2,{GROUP}\n"  # the profile on a later row
        "@RBT#001,Helper,,,room-1,\n"  # the same placement again: one more call
        f"@RBT#002,,,,,{GROUP}\n"
    )
    result = places.invoke("--json", "provision", write(tmp_path, "plan.csv", plan))

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["items"] == report["succeeded"] == 2 + 4 + 1
    fake = places.fake
    assert fake.robot_profile("@RBT#001") == {"Nick": "Helper"}
    assert sorted(fake.room_members("room-1")) == ["@RBT#001", "@RBT#002"]
    assert fake.room_members("room-2") == ["@RBT#001"]
    assert fake.live_group_members(GROUP) == ["@RBT#001", "@RBT#002"]
    assert group_add_calls(places) == 1  # the group's robots gathered from three rows
    room_adds = [c for c in fake.calls if c.endpoint == Endpoint.ROOM_ADD_ROBOT]
    assert len(room_adds) == 4


def test_a_malformed_row_at_the_end_of_a_big_plan_stops_it_before_any_call(
    served: Served, tmp_path: Path
) -> None:
    rows = "".join(f"@RBT#{i % 10},,,,room-{i},\n" for i in range(20_000))
    plan = f"user_id,nick,face_url,self_signature,rooms,live_groups\n{rows}@RBT#1,,,,,,\n"
    result = served.invoke("provision", write(tmp_path, "plan.csv", plan))

    assert result.exit_code == 2
    assert "line 20002: 7 cells, but the header has 6" in result.stderr
    assert served.fake.calls == []


def test_many_failures_are_counted_by_error_the_first_20_named_and_all_listed_in_json(
    places: Served, tmp_path: Path
) -> None:
    missing = [f"gone-{i:02d}" for i in range(30)]
    places.fake.fail_next(Endpoint.ROOM_ADD_ROBOT, 100002, times=5)  # whichever come first
    path = write(tmp_path, "plan.json", json_plan({"user_id": "@RBT#001", "rooms": missing}))

    text = places.invoke("provision", path)
    report = json.loads(places.invoke("--json", "provision", path).stdout)

    assert text.exit_code == 1
    lines = text.stdout.splitlines()
    assert "provision: 1 succeeded, 30 failed, 0 skipped" in text.stdout
    start = lines.index("failed (NotFoundError 25, InvalidParameterError 5):")
    named = lines[start + 1 : start + 21]
    assert [line.split(":")[0] for line in named] == [
        f"  room add {r} @RBT#001" for r in missing[:20]
    ]
    assert lines[start + 21] == "  and 10 more (--journal FILE keeps them all)"
    # The second run: only NotFoundError, the scripted faults are used up.
    assert (report["failed"], report["errors"]) == (30, {"NotFoundError": 30})
    # JSON lists them all, each with its item's index (creation 0, then the rooms).
    assert sorted((f["index"], f["item"]) for f in report["failures"]) == [
        (1 + n, f"room add {room} @RBT#001") for n, room in enumerate(missing)
    ]


def test_a_plan_changed_during_the_run_stops_it_and_reports_what_was_done(
    places: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plan.csv"
    path.write_text("user_id,rooms\n@RBT#001,room-1\n@RBT#002,room-2\n", encoding="utf-8")
    creates = _provision._creates

    def edit_then_create(plan: Plan, earlier: Any) -> Any:
        # Checked, the robots about to be created: the file is edited (same count).
        path.write_text("user_id,rooms\n@RBT#001,room-2\n@RBT#002,room-1\n", encoding="utf-8")
        status = path.stat()  # a later time, even on a coarse clock
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 2_000_000_000))
        return creates(plan, earlier)

    monkeypatch.setattr(_provision, "_creates", edit_then_create)
    result = places.invoke("--json", "provision", str(path))

    assert result.exit_code == 2
    report = json.loads(result.stdout)  # the report of what was done, then the error
    assert (report["succeeded"], report["not_started"], report["items"]) == (2, 2, 4)
    assert add_up(report) == report["items"]
    changed = f"{path}: the plan changed during the run: the file was modified after it was"
    assert report["error"]["class"] == "PlanError"
    assert report["error"]["message"].startswith(changed)
    assert (report["ok"], report["exit_code"]) == (False, 2)
    assert f"error: {changed}" in result.stderr
    assert sorted(places.fake.robots) == ["@RBT#001", "@RBT#002"]
    assert places.fake.room_members("room-1") == places.fake.room_members("room-2") == []


def test_an_invalid_placement_read_in_the_second_pass_is_a_changed_plan(
    places: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "plan.json", json_plan({"user_id": "@RBT#001", "rooms": ["room-1"]}))
    # As if the file now said something the SDK refuses (the first pass let it through).
    monkeypatch.setattr(Plan, "room_placements", lambda plan: iter([("room-1", "")]))

    result = places.invoke("provision", path)

    assert result.exit_code == 2
    assert "provision: 1 succeeded, 0 failed, 0 skipped, 1 not started (2 items)" in (result.stdout)
    assert "the plan changed during the run: room add room-1 : Member_Account" in result.stderr
    assert "Traceback" not in result.output
