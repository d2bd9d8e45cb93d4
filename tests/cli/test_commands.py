from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any, NamedTuple
from unittest.mock import ANY

import anyio
import click
import pytest
from click.testing import Result

from tencent_chat_robots import ENDPOINTS, Endpoint
from tencent_chat_robots.cli._main import cli, main
from tencent_chat_robots.testing import FakeTencentChat

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


def test_json_output_parses(served: Served) -> None:
    for robot in ("@RBT#a", "@RBT#b"):
        assert served.invoke("robots", "create", robot).exit_code == 0
    served.fake.create_room("room-1")

    listed = served.invoke("--json", "robots", "list")
    assert json.loads(listed.stdout) == {"ok": True, "robots": ["@RBT#a", "@RBT#b"]}

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


# --- every command: one JSON object, whatever happens (issue 18, items 4, 12, 13) ---------

MSG_KEY = "<msg_key>"

# Each API's command, with arguments the app prepared below accepts. Written by hand: a
# row added to the endpoint table fails test_every_api_has_a_command_here until added.
EVERY_COMMAND: dict[str, tuple[str, ...]] = {
    "create_robot": ("robots", "create", "@RBT#new"),
    "get_all_robots": ("robots", "list"),
    "delete_robot": ("robots", "delete", "@RBT#a"),
    "add_robot_to_room": ("room", "add", "room-1", "@RBT#b"),
    "remove_robot_from_room": ("room", "remove", "room-1", "@RBT#a"),
    "add_robots_to_live_group": ("group", "add", "@TGS#live1", "@RBT#b"),
    "remove_robots_from_live_group": ("group", "remove", "@TGS#live1", "@RBT#a"),
    "add_robots_to_live_room": ("live-room", "add", "live-1", "@RBT#b"),
    "remove_robots_from_live_room": ("live-room", "remove", "live-1", "@RBT#a"),
    "get_live_room_robots": ("live-room", "list", "live-1"),
    "send_c2c_message": ("message", "send", "@RBT#a", "user1", "hello"),
    "send_group_message": ("group-message", "send", "@GRP#chat", "hello", "--from", "@RBT#a"),
    # MSG_KEY: the key of the message the app fixture sent (the fake makes it up).
    "modify_c2c_message": ("message", "modify", "@RBT#a", "user1", MSG_KEY, "edited"),
    "modify_group_message": ("group-message", "modify", "@GRP#chat", "1", "edited"),
    "send_stream_chunk": ("message", "stream", "@RBT#a", "user1", "hello", "--finish"),
}

# What the fake receives from each: the documented path and body.
SENT: dict[str, tuple[str, dict[str, Any]]] = {
    "create_robot": (Endpoint.CREATE_ROBOT, {"UserID": "@RBT#new"}),
    "get_all_robots": (Endpoint.GET_ALL_ROBOTS, {}),
    "delete_robot": (Endpoint.DELETE_ROBOT, {"Robot_Account": "@RBT#a"}),
    "add_robot_to_room": (
        Endpoint.ROOM_ADD_ROBOT,
        {"RoomId": "room-1", "Member_Account": "@RBT#b"},
    ),
    "remove_robot_from_room": (
        Endpoint.ROOM_DELETE_ROBOT,
        {"RoomId": "room-1", "Member_Account": "@RBT#a"},
    ),
    "add_robots_to_live_group": (
        Endpoint.LIVE_GROUP_ADD_ROBOTS,
        {"GroupId": "@TGS#live1", "Member_Account": ["@RBT#b"]},
    ),
    "remove_robots_from_live_group": (
        Endpoint.LIVE_GROUP_DEL_ROBOTS,
        {"GroupId": "@TGS#live1", "Member_Account": ["@RBT#a"]},
    ),
    "add_robots_to_live_room": (
        Endpoint.LIVE_ROOM_ADD_ROBOT,
        {"RoomId": "live-1", "RobotList_Account": ["@RBT#b"]},
    ),
    "remove_robots_from_live_room": (
        Endpoint.LIVE_ROOM_DEL_ROBOT,
        {"RoomId": "live-1", "RobotList_Account": ["@RBT#a"]},
    ),
    "get_live_room_robots": (Endpoint.LIVE_ROOM_GET_ROBOT, {"RoomId": "live-1"}),
    # Numbered by the client (MsgRandom, MsgSeq, Random): any number.
    "send_c2c_message": (
        Endpoint.SEND_C2C_MESSAGE,
        {
            "From_Account": "@RBT#a",
            "To_Account": "user1",
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hello"}}],
            "MsgRandom": ANY,
            "MsgSeq": ANY,
        },
    ),
    "send_group_message": (
        Endpoint.SEND_GROUP_MESSAGE,
        {
            "GroupId": "@GRP#chat",
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hello"}}],
            "From_Account": "@RBT#a",
            "Random": ANY,
        },
    ),
    "modify_c2c_message": (
        Endpoint.MODIFY_C2C_MESSAGE,
        {
            "From_Account": "@RBT#a",
            "To_Account": "user1",
            "MsgKey": ANY,
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "edited"}}],
        },
    ),
    "modify_group_message": (
        Endpoint.MODIFY_GROUP_MESSAGE,
        {
            "GroupId": "@GRP#chat",
            "MsgSeq": 1,
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "edited"}}],
        },
    ),
    "send_stream_chunk": (
        Endpoint.SEND_STREAM_CHUNK,
        {"From_Account": "@RBT#a", "To_Account": "user1", "Chunk": "hello", "Finish": 1},
    ),
}

# Each command with an argument that breaks a documented rule (robot ids: "@RBT#" and
# at most 32 bytes; a live room's RoomId: at most 48 bytes).
BROKEN_RULE: dict[str, tuple[tuple[str, ...], str]] = {
    "create_robot": (("robots", "create", "RBT001"), "must start with '@RBT#'"),
    "delete_robot": (("robots", "delete", "@RBT#" + "x" * 35), "at most 32 UTF-8 bytes"),
    "add_robot_to_room": (("room", "add", "room-1", "bot1"), "must start with '@RBT#'"),
    "remove_robot_from_room": (("room", "remove", "room-1", "bot1"), "must start with '@RBT#'"),
    "add_robots_to_live_group": (
        ("group", "add", "@TGS#live1", "@RBT#b", "bot1"),
        "must start with '@RBT#'",
    ),
    "remove_robots_from_live_group": (
        ("group", "remove", "@TGS#live1", "bot1"),
        "must start with '@RBT#'",
    ),
    "add_robots_to_live_room": (("live-room", "add", "live-1", "bot1"), "must start with '@RBT#'"),
    "remove_robots_from_live_room": (
        ("live-room", "remove", "live-1", "@RBT#" + "x" * 35),
        "at most 32 UTF-8 bytes",
    ),
    "get_live_room_robots": (("live-room", "list", "x" * 49), "1 to 48 UTF-8 bytes"),
    "send_c2c_message": (("message", "send", "@RBT#a", "", "hi"), "To_Account"),
    "send_group_message": (("group-message", "send", "@GRP#chat", "x" * 12288), "12 KB"),
    "modify_c2c_message": (("message", "modify", "@RBT#a", "user1", "", "x"), "MsgKey"),
    "modify_group_message": (("group-message", "modify", "", "1", "x"), "GroupId"),
    "send_stream_chunk": (("message", "stream", "@RBT#a", "user1", ""), "must not be empty"),
}

# A final (never retried) error for each: 10007 permission denied on the IM services,
# 100006 on the engines (room_engine, live_engine).
REFUSED: dict[str, tuple[str, int]] = {
    "create_robot": (Endpoint.CREATE_ROBOT, 10007),
    "get_all_robots": (Endpoint.GET_ALL_ROBOTS, 10007),
    "delete_robot": (Endpoint.DELETE_ROBOT, 10007),
    "add_robot_to_room": (Endpoint.ROOM_ADD_ROBOT, 100006),
    "remove_robot_from_room": (Endpoint.ROOM_DELETE_ROBOT, 100006),
    "add_robots_to_live_group": (Endpoint.LIVE_GROUP_ADD_ROBOTS, 10007),
    "remove_robots_from_live_group": (Endpoint.LIVE_GROUP_DEL_ROBOTS, 10007),
    "add_robots_to_live_room": (Endpoint.LIVE_ROOM_ADD_ROBOT, 100006),
    "remove_robots_from_live_room": (Endpoint.LIVE_ROOM_DEL_ROBOT, 100006),
    "get_live_room_robots": (Endpoint.LIVE_ROOM_GET_ROBOT, 100006),
    "send_c2c_message": (Endpoint.SEND_C2C_MESSAGE, 90009),  # admin required
    "send_group_message": (Endpoint.SEND_GROUP_MESSAGE, 10007),
    "modify_c2c_message": (Endpoint.MODIFY_C2C_MESSAGE, 90009),
    "modify_group_message": (Endpoint.MODIFY_GROUP_MESSAGE, 10007),
    "send_stream_chunk": (Endpoint.SEND_STREAM_CHUNK, 10007),
}

SHARED_FLAGS = (
    "--sdkappid",
    "--secret-key",
    "--admin",
    "--region",
    "--base-url",
    "--rate-limit",
    "--redis-url",
    "--json",
)


class App(NamedTuple):
    """The served fake, prepared; ``invoke`` puts the sent message's key for MSG_KEY."""

    fake: FakeTencentChat
    base_url: str
    msg_key: str

    def invoke(self, *args: str) -> Result:
        return Served(self.fake, self.base_url).invoke(
            *(self.msg_key if arg == MSG_KEY else arg for arg in args)
        )


@pytest.fixture
def app(served: Served) -> App:
    """Robots @RBT#a (in room-1, live group @TGS#live1, live room live-1 and the group
    @GRP#chat, where it sent message 1, as it did to user1) and @RBT#b."""
    fake = served.fake
    fake.create_room("room-1")
    fake.create_live_group("@TGS#live1")
    fake.create_live_room("live-1")
    for robot in ("@RBT#a", "@RBT#b"):
        fake.create_robot(robot)
    fake.add_room_member("room-1", "@RBT#a")
    fake.add_live_group_members("@TGS#live1", ["@RBT#a"])
    fake.add_live_room_robots("live-1", ["@RBT#a"])
    fake.create_user("user1")
    fake.create_group("@GRP#chat", "Public", members=["@RBT#a"])

    async def send_first_messages() -> str:
        async with fake.client() as chat:
            await chat.send_group_message("@GRP#chat", "first", from_account="@RBT#a")
            return (await chat.send_c2c_message("@RBT#a", "user1", "first")).msg_key

    msg_key = anyio.run(send_first_messages)
    fake.reset_calls()
    return App(fake, served.base_url, msg_key)


def one_json_object(stdout: str) -> dict[str, Any]:
    """The whole of stdout as exactly one JSON object (json.loads refuses two)."""
    document = json.loads(stdout)
    assert isinstance(document, dict), stdout
    return document


def test_every_api_has_a_command_here() -> None:
    assert set(EVERY_COMMAND) == {spec.method for spec in ENDPOINTS}
    assert set(BROKEN_RULE) | {"get_all_robots"} == set(EVERY_COMMAND)
    assert set(REFUSED) == set(SENT) == set(EVERY_COMMAND)


@pytest.mark.parametrize("method", EVERY_COMMAND)
def test_success_is_one_json_object_with_the_options_after_the_command(
    app: App, method: str
) -> None:
    # --json after the command's name (it used to be taken before it only).
    result = app.invoke(*EVERY_COMMAND[method], "--json")

    assert result.exit_code == 0, result.output
    assert one_json_object(result.stdout)["ok"] is True
    assert [(c.endpoint, c.body) for c in app.fake.calls] == [SENT[method]]


def test_listing_commands_answer_an_object_not_a_bare_list(app: App) -> None:
    listed = one_json_object(app.invoke("robots", "list", "--json").stdout)
    assert listed == {"ok": True, "robots": ["@RBT#a", "@RBT#b"]}
    in_room = one_json_object(app.invoke("live-room", "list", "live-1", "--json").stdout)
    assert in_room == {"ok": True, "room_id": "live-1", "robots": ["@RBT#a"]}


@pytest.mark.parametrize("method", BROKEN_RULE)
def test_a_broken_rule_is_one_json_object_exit_2_and_nothing_sent(app: App, method: str) -> None:
    args, rule = BROKEN_RULE[method]

    result = app.invoke(*args, "--json")

    assert result.exit_code == 2
    failure = one_json_object(result.stdout)
    assert failure["ok"] is False
    assert failure["exit_code"] == 2
    assert failure["error"]["class"] == "ValidationError"
    assert failure["error"]["code"] is None
    assert rule in failure["error"]["message"]
    assert rule in result.stderr  # and said to people
    assert app.fake.calls == []


@pytest.mark.parametrize("method", REFUSED)
def test_an_api_error_is_one_json_object_exit_1(app: App, method: str) -> None:
    endpoint, code = REFUSED[method]
    app.fake.fail_next(endpoint, code)

    result = app.invoke(*EVERY_COMMAND[method], "--json")

    assert result.exit_code == 1
    failure = one_json_object(result.stdout)
    assert failure["ok"] is False
    assert failure["exit_code"] == 1
    assert failure["error"]["class"] == "PermissionDeniedError"
    assert failure["error"]["code"] == code
    assert str(code) in failure["error"]["message"]


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A loopback URL whose port refuses connections (bound, not listening)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}"


@pytest.mark.parametrize("method", EVERY_COMMAND)
def test_a_refused_connection_is_one_json_object_exit_1(
    refusing_url: str, no_backoff: None, method: str
) -> None:
    credentials = ("--sdkappid", "1400000000", "--secret-key", "k")
    result = invoke(*EVERY_COMMAND[method], *credentials, "--base-url", refusing_url, "--json")

    assert result.exit_code == 1
    failure = one_json_object(result.stdout)
    assert failure["ok"] is False
    assert failure["exit_code"] == 1
    assert failure["error"]["class"] == "APIConnectionError"
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["robots", "list", "--json", "--no-such-option"],
        ["room", "add", "room-1", "--json"],  # ROBOT_ID missing
        ["--json", "robots", "no-such-verb"],
        ["live-room", "add", "live-1", "--rate-limit", "0", "--json", "@RBT#a"],
    ],
)
def test_a_usage_error_is_one_json_object_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit) as ended:
        main(args)

    assert ended.value.code == 2
    out, err = capsys.readouterr()
    failure = one_json_object(out)
    assert failure["ok"] is False
    assert failure["exit_code"] == 2
    assert failure["error"]["class"] == "UsageError"
    assert failure["error"]["message"]
    assert "Usage:" in err


@pytest.mark.parametrize("method", EVERY_COMMAND)
def test_a_missing_app_is_said_in_the_command_lines_words(method: str) -> None:
    result = invoke(*EVERY_COMMAND[method], "--secret-key", "k", "--json")

    assert result.exit_code == 2
    message = "no app: give --sdkappid or set TENCENT_CHAT_SDKAPPID"
    assert message in result.stderr
    assert one_json_object(result.stdout)["error"]["message"] == message
    assert "sdkappid=" not in result.output


def test_a_wrong_secret_says_where_the_secret_comes_from(app: App) -> None:
    args = ("--base-url", app.base_url, "--sdkappid", str(app.fake.sdkappid))
    wrong = ("--secret-key", "not-" + app.fake.secret_key, "--admin", app.fake.admin)

    said = invoke("robots", "list", *args, *wrong)
    as_json = invoke("room", "add", "room-1", "@RBT#b", *args, *wrong, "--json")

    assert said.exit_code == as_json.exit_code == 1
    assert "AuthenticationError" in said.stderr
    failure = one_json_object(as_json.stdout)
    assert failure["error"]["class"] == "AuthenticationError"
    for message in (said.stderr, failure["error"]["message"]):
        assert "--secret-key" in message
        assert "TENCENT_CHAT_SECRET_KEY" in message
    assert app.fake.room_members("room-1") == ["@RBT#a"]


def test_connection_options_after_the_arguments(app: App) -> None:
    fake = app.fake
    result = invoke(
        "room",
        "add",
        "room-1",
        "@RBT#b",
        "--base-url",
        app.base_url,
        "--sdkappid",
        str(fake.sdkappid),
        "--secret-key",
        fake.secret_key,
        "--admin",
        fake.admin,
    )
    assert result.exit_code == 0, result.output
    assert fake.room_members("room-1") == ["@RBT#a", "@RBT#b"]


def _leaf_commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, (*path, name))
        else:
            yield (*path, name)


SINGLE_CALL_COMMANDS = [args[:2] for args in EVERY_COMMAND.values()] + [
    (method,) for method in EVERY_COMMAND
]


@pytest.mark.parametrize("command", SINGLE_CALL_COMMANDS, ids=" ".join)
def test_each_commands_help_lists_the_connection_options(command: tuple[str, ...]) -> None:
    assert command in set(_leaf_commands(cli))
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    for flag in SHARED_FLAGS:
        assert flag in result.stdout, (command, flag)


# --- an empty list prints nothing on stdout (item 14) -----------------------------------


def test_no_robots_prints_nothing_on_stdout(served: Served) -> None:
    served.fake.create_live_room("live-1")
    for args in (("robots", "list"), ("live-room", "list", "live-1")):
        result = served.invoke(*args)
        assert result.exit_code == 0, result.output
        assert result.stdout == ""  # a shell loop over the ids runs no time
        assert "no robots" in result.stderr
        listed = one_json_object(served.invoke(*args, "--json").stdout)
        assert listed["robots"] == []


# --- the API's method names work as commands (item 15) ----------------------------------


@pytest.mark.parametrize("method", EVERY_COMMAND)
@pytest.mark.parametrize("spelling", ["method", "dashed"])
def test_the_apis_method_name_runs_its_command(app: App, method: str, spelling: str) -> None:
    name = method if spelling == "method" else method.replace("_", "-")
    arguments = EVERY_COMMAND[method][2:]

    result = app.invoke(name, *arguments, "--json")

    assert result.exit_code == 0, result.output
    assert one_json_object(result.stdout)["ok"] is True
    assert [(c.endpoint, c.body) for c in app.fake.calls] == [SENT[method]]


def test_method_names_answer_as_the_commands_do(app: App) -> None:
    by_command = app.invoke("room", "add", "room-1", "bot1")
    by_method = app.invoke("add_robot_to_room", "room-1", "bot1")
    assert by_command.exit_code == by_method.exit_code == 2
    assert by_command.stderr == by_method.stderr
    # Hidden: the top-level help lists the groups, not ten more names.
    listed = invoke("--help").stdout
    assert "room" in listed
    assert "add_robot_to_room" not in listed
    assert "add-robot-to-room" not in listed
    # A command's help names the other spelling.
    assert "tencent-chat-robots add_robot_to_room" in " ".join(
        invoke("room", "add", "--help").stdout.split()
    )


def test_command_names_are_the_endpoint_tables() -> None:
    for spec in ENDPOINTS:
        group = cli.commands[spec.cli[0]]
        assert isinstance(group, click.Group)
        assert spec.cli[1] in group.commands, spec
        assert cli.commands[spec.method].hidden


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
    assert live.invoke("live-room", "list", "live-1").stdout == ""


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
    assert json.loads(listed.stdout)["robots"] == ["@RBT#a", "@RBT#c"]

    removed = live.invoke("--json", "live-room", "remove", "live-1", "@RBT#c")
    assert json.loads(removed.stdout)["robot_ids"] == ["@RBT#c"]
    listed = live.invoke("--json", "live-room", "list", "live-1")
    assert json.loads(listed.stdout)["robots"] == ["@RBT#a"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("live-room", "add", "live-1", *LIVE_ROBOTS), "a live room holds at most 3"),
        (("live-room", "add", "x" * 49, "@RBT#a"), "must be 1 to 48 UTF-8 bytes, got 49"),
        (("live-room", "list", "é" * 25), "must be 1 to 48 UTF-8 bytes, got 50"),
        (("live-room", "add", "live-1", "@RBT#a", ""), "must be a non-empty string"),
        (("live-room", "add", "live-1", "bot1"), "[0] must start with '@RBT#', got 'bot1'"),
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
