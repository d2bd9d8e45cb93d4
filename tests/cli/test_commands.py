from __future__ import annotations

import json

import pytest

from tencent_chat_robots import Endpoint

from .conftest import Served, invoke


def test_create_list_delete_round_trip(served: Served) -> None:
    created = served.invoke("robots", "create", "@RBT#001", "--nick", "Helper", "--face-url", "u")
    assert created.exit_code == 0, created.output
    assert "@RBT#001" in created.stdout
    assert served.fake.robots == ["@RBT#001"]
    assert served.fake.robot_profile("@RBT#001") == {"Nick": "Helper", "FaceUrl": "u"}

    listed = served.invoke("robots", "list")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.split() == ["@RBT#001"]

    deleted = served.invoke("robots", "delete", "@RBT#001")
    assert deleted.exit_code == 0, deleted.output
    assert served.fake.robots == []
    assert "no robots" in served.invoke("robots", "list").stdout


def test_json_output_parses(served: Served) -> None:
    for robot in ("@RBT#a", "@RBT#b"):
        assert served.invoke("robots", "create", robot).exit_code == 0
    served.fake.create_room("room-1")

    listed = served.invoke("--json", "robots", "list")
    assert json.loads(listed.stdout) == ["@RBT#a", "@RBT#b"]

    added = served.invoke("--json", "room", "add", "room-1", "@RBT#a")
    answer = json.loads(added.stdout)
    assert answer["ok"] is True
    # Room calls are the ones the server gives a RequestId.
    assert isinstance(answer["request_id"], str)
    assert answer["request_id"]
    assert answer["room_id"] == "room-1"


def test_room_add_and_remove(served: Served) -> None:
    served.fake.create_room("room-1")
    served.invoke("robots", "create", "@RBT#001")

    assert served.invoke("room", "add", "room-1", "@RBT#001").exit_code == 0
    assert served.fake.room_members("room-1") == ["@RBT#001"]
    assert served.invoke("room", "remove", "room-1", "@RBT#001").exit_code == 0
    assert served.fake.room_members("room-1") == []


def test_room_add_to_unknown_room_fails_with_the_error_class(served: Served) -> None:
    served.invoke("robots", "create", "@RBT#001")
    result = served.invoke("room", "add", "no-such-room", "@RBT#001")
    assert result.exit_code == 1
    assert "NotFoundError" in result.stderr
    assert "100004" in result.stderr
    assert "Traceback" not in result.output


def test_group_add_and_remove_several_robots(served: Served) -> None:
    group = "@TGS#live1"
    served.fake.create_live_group(group)
    for robot in ("@RBT#a", "@RBT#b"):
        served.invoke("robots", "create", robot)

    added = served.invoke("--json", "group", "add", group, "@RBT#a", "@RBT#b")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["robot_ids"] == ["@RBT#a", "@RBT#b"]
    assert served.fake.live_group_members(group) == ["@RBT#a", "@RBT#b"]
    # All in one call, as the command promises.
    adds = [c for c in served.fake.calls if c.endpoint == Endpoint.LIVE_GROUP_ADD_ROBOTS]
    assert len(adds) == 1

    assert served.invoke("group", "remove", group, "@RBT#b").exit_code == 0
    assert served.fake.live_group_members(group) == ["@RBT#a"]


def test_group_add_needs_a_robot() -> None:
    result = invoke("group", "add", "@TGS#live1")
    assert result.exit_code == 2
    assert "ROBOT_ID" in result.stderr


def test_server_error_exits_1(served: Served) -> None:
    # 10007 (permission denied) is final: no retry hides it.
    served.fake.fail_next(Endpoint.GET_ALL_ROBOTS, 10007)
    result = served.invoke("robots", "list")
    assert result.exit_code == 1
    assert "PermissionDeniedError" in result.stderr


def test_settings_from_environment(served: Served) -> None:
    env = {
        "TENCENT_CHAT_SDKAPPID": str(served.fake.sdkappid),
        "TENCENT_CHAT_SECRET_KEY": served.fake.secret_key,
        "TENCENT_CHAT_ADMIN": served.fake.admin,
        "TENCENT_CHAT_BASE_URL": served.base_url,
    }
    result = invoke("robots", "create", "@RBT#env", env=env)
    assert result.exit_code == 0, result.output
    assert served.fake.robots == ["@RBT#env"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # In the command line's words, not the Python API's ("pass sdkappid=").
        (("--secret-key", "k"), "no app: give --sdkappid or set TENCENT_CHAT_SDKAPPID"),
        (
            ("--sdkappid", "1400000000"),
            "no secret key: set TENCENT_CHAT_SECRET_KEY or give --secret-key",
        ),
        (("--sdkappid", "abc", "--secret-key", "k"), "sdkappid must be an integer"),
    ],
)
def test_missing_or_bad_credentials_exit_2(args: tuple[str, ...], message: str) -> None:
    result = invoke(*args, "robots", "list")
    assert result.exit_code == 2
    assert message in result.stderr
    assert "pass " not in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("robots", "create", "no-prefix"),
        ("robots", "create", "@RBT#" + "x" * 40),
        ("robots", "create", "@RBT#ok", "--nick", "n" * 501),
        ("robots", "delete", "bob"),
        ("room", "add", "", "@RBT#001"),
    ],
)
def test_arguments_breaking_the_sdk_rules_exit_2_without_a_call(
    served: Served, args: tuple[str, ...]
) -> None:
    result = served.invoke(*args)
    assert result.exit_code == 2
    assert "error:" in result.stderr
    assert "Traceback" not in result.output
    assert served.fake.calls == []


# --- live rooms (TUILiveKit): at most three robots, RoomId at most 48 bytes ---------------

LIVE_ROBOTS = ("@RBT#a", "@RBT#b", "@RBT#c", "@RBT#d")


@pytest.fixture
def live(served: Served) -> Served:
    served.fake.create_live_room("live-1")
    for robot in LIVE_ROBOTS:
        served.fake.create_robot(robot)
    return served


def test_live_room_add_list_and_remove(live: Served) -> None:
    added = live.invoke("live-room", "add", "live-1", "@RBT#a", "@RBT#b")
    assert added.exit_code == 0, added.output
    assert "added @RBT#a, @RBT#b to live room live-1" in added.stdout
    assert live.fake.live_room_robots("live-1") == ["@RBT#a", "@RBT#b"]
    # All in one call, as the command promises.
    adds = [c for c in live.fake.calls if c.endpoint == Endpoint.LIVE_ROOM_ADD_ROBOT]
    (body,) = [c.body for c in adds]
    assert body == {"RoomId": "live-1", "RobotList_Account": ["@RBT#a", "@RBT#b"]}

    listed = live.invoke("live-room", "list", "live-1")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.split() == ["@RBT#a", "@RBT#b"]

    removed = live.invoke("live-room", "remove", "live-1", "@RBT#a")
    assert removed.exit_code == 0, removed.output
    assert "removed @RBT#a from live room live-1" in removed.stdout
    assert live.fake.live_room_robots("live-1") == ["@RBT#b"]
    assert live.invoke("live-room", "remove", "live-1", "@RBT#b").exit_code == 0
    assert "no robots" in live.invoke("live-room", "list", "live-1").stdout


def test_live_room_json_output(live: Served) -> None:
    added = live.invoke("--json", "live-room", "add", "live-1", "@RBT#a", "@RBT#c")
    answer = json.loads(added.stdout)
    assert answer["ok"] is True
    assert answer["room_id"] == "live-1"
    assert answer["robot_ids"] == ["@RBT#a", "@RBT#c"]
    # Live-room answers carry a RequestId, as room ones do.
    assert isinstance(answer["request_id"], str)
    assert answer["request_id"].startswith("Id-")

    listed = live.invoke("--json", "live-room", "list", "live-1")
    assert json.loads(listed.stdout) == ["@RBT#a", "@RBT#c"]

    removed = live.invoke("--json", "live-room", "remove", "live-1", "@RBT#c")
    assert json.loads(removed.stdout)["robot_ids"] == ["@RBT#c"]
    assert json.loads(live.invoke("--json", "live-room", "list", "live-1").stdout) == ["@RBT#a"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("live-room", "add", "live-1", *LIVE_ROBOTS), "a live room holds at most 3"),
        (("live-room", "add", "x" * 49, "@RBT#a"), "must be 1 to 48 UTF-8 bytes, got 49"),
        (("live-room", "list", "é" * 25), "must be 1 to 48 UTF-8 bytes, got 50"),
        (("live-room", "add", "live-1", "@RBT#a", ""), "must be a non-empty string"),
    ],
)
def test_live_room_arguments_breaking_the_sdk_rules_exit_2_without_a_call(
    live: Served, args: tuple[str, ...], message: str
) -> None:
    result = live.invoke(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert live.fake.calls == []
    assert live.fake.live_room_robots("live-1") == []


def test_live_room_commands_need_their_arguments() -> None:
    for args in (("live-room", "add", "live-1"), ("live-room", "remove", "live-1")):
        result = invoke(*args)
        assert result.exit_code == 2
        assert "ROBOT_ID" in result.stderr
    result = invoke("live-room", "list")
    assert result.exit_code == 2
    assert "ROOM_ID" in result.stderr


@pytest.mark.parametrize(
    ("args", "error", "code"),
    [
        (("live-room", "add", "no-such-room", "@RBT#a"), "NotFoundError", "100004"),
        (("live-room", "list", "no-such-room"), "NotFoundError", "100004"),
        (("live-room", "add", "conference-1", "@RBT#a"), "PermissionDeniedError", "100006"),
        (("live-room", "remove", "conference-1", "@RBT#a"), "PermissionDeniedError", "100006"),
        (("live-room", "add", "live-1", "@RBT#never"), "InvalidParameterError", "100002"),
    ],
)
def test_live_room_api_errors_exit_1_with_the_error_class(
    live: Served, args: tuple[str, ...], error: str, code: str
) -> None:
    live.fake.create_room("conference-1")  # a TUIRoom room, not a live room
    result = live.invoke(*args)
    assert result.exit_code == 1
    assert error in result.stderr
    assert code in result.stderr
    assert "Traceback" not in result.output
    assert len(live.fake.calls) == 1


def test_a_fourth_robot_across_calls_is_the_servers_to_refuse(live: Served) -> None:
    assert live.invoke("live-room", "add", "live-1", *LIVE_ROBOTS[:3]).exit_code == 0
    result = live.invoke("live-room", "add", "live-1", "@RBT#d")
    assert result.exit_code == 1
    assert "InvalidParameterError" in result.stderr
    assert live.fake.live_room_robots("live-1") == list(LIVE_ROBOTS[:3])
