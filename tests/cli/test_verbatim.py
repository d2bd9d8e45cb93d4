"""Ids, server messages and URLs are printed as they are, never read as Rich markup or emoji."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tencent_chat_robots.cli._main import cli

from .conftest import Served

MARKUP = ["[/]", "[bold]x[/bold]"]
# Markup, and an emoji code Rich would replace even with markup escaped.
ROBOT = "@RBT#[b]:smile:[/b]"
ROOM = "[/]room:thumbs_up:"
GROUP = "@TGS#[i]:x:[/i]"


@pytest.mark.parametrize("text", MARKUP)
def test_an_invalid_id_exits_2_quoting_it_verbatim(served: Served, text: str) -> None:
    result = served.invoke("robots", "create", text)

    assert result.exit_code == 2
    assert f"must start with '@RBT#', got {text!r}" in result.stderr
    assert served.fake.calls == []


def test_every_command_prints_ids_verbatim(served: Served) -> None:
    served.fake.create_room(ROOM)
    served.fake.create_live_group(GROUP)

    outputs = [
        served.invoke("robots", "create", ROBOT),
        served.invoke("robots", "list"),
        served.invoke("room", "add", ROOM, ROBOT),
        served.invoke("group", "add", GROUP, ROBOT),
        served.invoke("robots", "delete", ROBOT),
    ]

    assert [result.exit_code for result in outputs] == [0] * len(outputs)
    assert [result.stdout.strip() for result in outputs] == [
        f"created robot {ROBOT}",
        ROBOT,
        f"added {ROBOT} to room {ROOM}",
        f"added {ROBOT} to live group {GROUP}",
        f"deleted robot {ROBOT}",
    ]


@pytest.mark.parametrize("markup", MARKUP)
def test_server_error_info_is_printed_verbatim(served: Served, markup: str) -> None:
    served.fake.create_live_group("@TGS#live1")
    robot = f"@RBT#{markup}"  # not a robot of the app: the fake's ErrorInfo quotes it

    result = served.invoke("group", "add", "@TGS#live1", robot)

    assert result.exit_code == 1
    assert f"{robot!r} is not a valid robot account" in result.stderr


@pytest.mark.parametrize("markup", MARKUP)
def test_a_plan_error_quotes_the_id_verbatim(served: Served, tmp_path: Path, markup: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"robots": [{"user_id": markup}]}), encoding="utf-8")

    result = served.invoke("provision", str(path))

    assert result.exit_code == 2
    assert f"robots[0]: UserID (user_id) must start with '@RBT#', got {markup!r}" in result.stderr


def test_the_provision_report_prints_ids_verbatim(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"robots": [{"user_id": ROBOT, "rooms": [ROOM]}]}), "utf-8")

    result = served.invoke("provision", str(path))  # the room does not exist

    assert result.exit_code == 1
    assert f"  room add {ROOM} {ROBOT}: NotFoundError: " in result.stdout


@pytest.mark.parametrize("markup", MARKUP)
def test_bench_prints_the_server_url_verbatim(served: Served, tmp_path: Path, markup: str) -> None:
    url = f"{served.base_url}/{markup}"  # every call fails there, which is not the point
    args = ["--sdkappid", str(served.fake.sdkappid), "--secret-key", served.fake.secret_key]
    bench = ["bench", "--endpoint", "get_all_robots", "--calls", "1", "--out", str(tmp_path)]

    result = CliRunner().invoke(cli, [*args, *bench, "--base-url", url], catch_exceptions=False)

    assert result.exit_code == 1
    assert f"Benchmarking {url} (a real server" in result.stdout
    assert f"1 calls on {url} in " in result.stdout
