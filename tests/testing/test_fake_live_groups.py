"""group_open_avchatroom_http_svc: add_robots and del_robots."""

from __future__ import annotations

import pytest

ADD = "group_open_avchatroom_http_svc/add_robots"
DEL = "group_open_avchatroom_http_svc/del_robots"
GROUP = "@TGS#a6I4ZUUGO"


@pytest.fixture
async def group(api) -> str:
    api.fake.create_live_group(GROUP)
    await api.create_robots("@RBT#1", "@RBT#2", "@RBT#3")
    return GROUP


async def test_add_and_remove(api, group: str) -> None:
    envelope = await api.call(ADD, {"GroupId": group, "Member_Account": ["@RBT#2", "@RBT#1"]})
    assert envelope == {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
    assert api.fake.live_group_members(group) == ["@RBT#2", "@RBT#1"]
    body = {"GroupId": group, "Member_Account": ["@RBT#3", "@RBT#2", "@RBT#3"]}
    assert await api.code(ADD, body) == 0
    assert api.fake.live_group_members(group) == ["@RBT#2", "@RBT#1", "@RBT#3"]
    assert await api.code(DEL, {"GroupId": group, "Member_Account": ["@RBT#2", "@RBT#3"]}) == 0
    assert api.fake.live_group_members(group) == ["@RBT#1"]


@pytest.mark.parametrize("endpoint", [ADD, DEL])
@pytest.mark.parametrize(
    "body",
    [
        {"Member_Account": ["@RBT#1"]},
        {"GroupId": None, "Member_Account": ["@RBT#1"]},
        {"GroupId": 5, "Member_Account": ["@RBT#1"]},
        {"GroupId": GROUP},
        {"GroupId": GROUP, "Member_Account": "@RBT#1"},
        {"GroupId": GROUP, "Member_Account": []},
        {"GroupId": GROUP, "Member_Account": ["@RBT#1", 2]},
        {"GroupId": GROUP, "Member_Account": [None]},
        # Parameter errors come before the group id and group checks.
        {"GroupId": "bad id", "Member_Account": []},
        {"GroupId": "@TGS#none", "Member_Account": "x"},
    ],
)
async def test_invalid_parameters(api, group: str, endpoint: str, body: dict[str, object]) -> None:
    envelope = await api.call(endpoint, body)
    assert envelope["ErrorCode"] == 10004
    assert "RequestId" not in envelope
    assert api.fake.live_group_members(group) == []


@pytest.mark.parametrize("endpoint", [ADD, DEL])
@pytest.mark.parametrize(
    "group_id",
    ["", "x" * 49, "é" * 25, "two words", "tab\there", "line\n", "nul\x00", "bell\x07", "\u3000"],
)
async def test_malformed_group_id(api, group: str, endpoint: str, group_id: str) -> None:
    assert await api.code(endpoint, {"GroupId": group_id, "Member_Account": ["@RBT#1"]}) == 10015


@pytest.mark.parametrize("group_id", ["x" * 48, "é" * 24, "@TGS#中文"])
async def test_group_id_up_to_48_bytes(api, group: str, group_id: str) -> None:
    api.fake.create_live_group(group_id)
    assert await api.code(ADD, {"GroupId": group_id, "Member_Account": ["@RBT#1"]}) == 0
    assert api.fake.live_group_members(group_id) == ["@RBT#1"]


@pytest.mark.parametrize("endpoint", [ADD, DEL])
async def test_unknown_or_dismissed_group(api, group: str, endpoint: str) -> None:
    assert await api.code(endpoint, {"GroupId": "@TGS#none", "Member_Account": ["@RBT#1"]}) == 10010
    api.fake.dismiss_live_group(group)
    assert await api.code(endpoint, {"GroupId": group, "Member_Account": ["@RBT#1"]}) == 10010


async def test_unknown_group_precedes_member_check(api, group: str) -> None:
    body = {"GroupId": "@TGS#none", "Member_Account": ["@RBT#never"]}
    assert await api.code(ADD, body) == 10010


@pytest.mark.parametrize("member", ["@RBT#never", "bot1", "administrator"])
async def test_only_valid_robots_and_all_or_nothing(api, group: str, member: str) -> None:
    body = {"GroupId": group, "Member_Account": ["@RBT#1", member]}
    assert await api.code(ADD, body) == 10004
    assert api.fake.live_group_members(group) == []


async def test_deleted_robot_cannot_be_added_but_can_be_removed(api, group: str) -> None:
    assert await api.code(ADD, {"GroupId": group, "Member_Account": ["@RBT#1"]}) == 0
    await api.code("openim_robot_http_svc/delete_robot", {"Robot_Account": "@RBT#1"})
    assert await api.code(ADD, {"GroupId": group, "Member_Account": ["@RBT#1"]}) == 10004
    assert api.fake.live_group_members(group) == ["@RBT#1"]
    assert await api.code(DEL, {"GroupId": group, "Member_Account": ["@RBT#1"]}) == 0
    assert api.fake.live_group_members(group) == []


async def test_removing_non_members(api, group: str) -> None:
    # A robot that is not in the group: nothing to do, fine.
    assert await api.code(DEL, {"GroupId": group, "Member_Account": ["@RBT#1"]}) == 0
    # An account that is not a robot at all: invalid, and nothing changes.
    assert await api.code(ADD, {"GroupId": group, "Member_Account": ["@RBT#2"]}) == 0
    body = {"GroupId": group, "Member_Account": ["@RBT#2", "@RBT#never"]}
    assert await api.code(DEL, body) == 10004
    assert api.fake.live_group_members(group) == ["@RBT#2"]


def test_live_group_set_up_api(fake) -> None:
    fake.create_live_group("g")
    fake.create_live_group("g")  # idempotent
    assert fake.live_group_members("g") == []
    for bad in ("", "a b", "x" * 49):
        with pytest.raises(ValueError, match="group id"):
            fake.create_live_group(bad)
    with pytest.raises(KeyError):
        fake.live_group_members("unknown")
    with pytest.raises(KeyError):
        fake.dismiss_live_group("unknown")
