"""openim_robot_http_svc: create_robot, get_all_robots, delete_robot."""

from __future__ import annotations

import pytest

CREATE = "openim_robot_http_svc/create_robot"
GET_ALL = "openim_robot_http_svc/get_all_robots"
DELETE = "openim_robot_http_svc/delete_robot"


async def listed(api) -> list[str]:
    envelope = await api.call(GET_ALL, {})
    assert envelope["ErrorCode"] == 0
    robots: list[str] = envelope["Robot_Account"]
    return robots


async def test_create_then_list_in_creation_order(api) -> None:
    for user_id in ("@RBT#b", "@RBT#a", "@RBT#c"):
        assert await api.code(CREATE, {"UserID": user_id}) == 0
    assert await listed(api) == ["@RBT#b", "@RBT#a", "@RBT#c"]
    assert api.fake.robots == ["@RBT#b", "@RBT#a", "@RBT#c"]


async def test_profile_is_stored(api) -> None:
    body = {
        "UserID": "@RBT#001",
        "Nick": "Jarvis",
        "FaceUrl": "www.example.com/head.jpg",
        "SelfSignature": "hello, world",
    }
    assert await api.code(CREATE, body) == 0
    assert api.fake.robot_profile("@RBT#001") == {
        "Nick": "Jarvis",
        "FaceUrl": "www.example.com/head.jpg",
        "SelfSignature": "hello, world",
    }


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"UserID": None},
        {"UserID": 1},
        {"UserID": ["@RBT#1"]},
        {"UserID": ""},
        {"UserID": "robot1"},
        {"UserID": "@rbt#1"},
        {"UserID": " @RBT#1"},
        {"UserID": "@RBT#" + "x" * 28},  # 33 bytes
        {"UserID": "@RBT#" + "é" * 14},  # 14 characters, 33 bytes
        {"UserID": "@RBT#1", "Nick": 5},
        {"UserID": "@RBT#1", "FaceUrl": None},
        {"UserID": "@RBT#1", "SelfSignature": ["x"]},
    ],
)
async def test_invalid_create(api, body: dict[str, object]) -> None:
    assert await api.code(CREATE, body) == 10004
    assert api.fake.robots == []


@pytest.mark.parametrize("user_id", ["@RBT#", "@RBT#" + "x" * 27, "@RBT#" + "é" * 13])
async def test_user_id_up_to_32_bytes(api, user_id: str) -> None:
    assert await api.code(CREATE, {"UserID": user_id}) == 0
    assert api.fake.robots == [user_id]


@pytest.mark.parametrize("field", ["Nick", "FaceUrl", "SelfSignature"])
async def test_profile_fields_up_to_500_bytes(api, field: str) -> None:
    assert await api.code(CREATE, {"UserID": "@RBT#1", field: "x" * 500}) == 0
    assert await api.code(CREATE, {"UserID": "@RBT#2", field: "x" * 501}) == 40601
    # 251 two-byte characters: short in characters, too long in bytes.
    assert await api.code(CREATE, {"UserID": "@RBT#3", field: "é" * 251}) == 40601
    assert api.fake.robots == ["@RBT#1"]


async def test_too_long_profile_does_not_update_existing_robot(api) -> None:
    assert await api.code(CREATE, {"UserID": "@RBT#1", "Nick": "old"}) == 0
    body = {"UserID": "@RBT#1", "Nick": "new", "SelfSignature": "x" * 501}
    assert await api.code(CREATE, body) == 40601
    assert api.fake.robot_profile("@RBT#1") == {"Nick": "old"}


async def test_create_is_idempotent_and_updates_profile(api) -> None:
    assert await api.code(CREATE, {"UserID": "@RBT#1", "Nick": "one", "FaceUrl": "f"}) == 0
    assert await api.code(CREATE, {"UserID": "@RBT#1", "Nick": "uno"}) == 0
    assert await listed(api) == ["@RBT#1"]
    assert api.fake.robot_profile("@RBT#1") == {"Nick": "uno", "FaceUrl": "f"}


async def test_twenty_robots_at_most(api) -> None:
    ids = [f"@RBT#{n}" for n in range(20)]
    await api.create_robots(*ids)
    envelope = await api.call(CREATE, {"UserID": "@RBT#extra"})
    assert envelope["ErrorCode"] == 10008
    # Re-creating an existing robot does not take a new slot.
    assert await api.code(CREATE, {"UserID": "@RBT#3", "Nick": "again"}) == 0
    assert await listed(api) == ids
    # Deleting frees a slot.
    assert await api.code(DELETE, {"Robot_Account": "@RBT#0"}) == 0
    assert await api.code(CREATE, {"UserID": "@RBT#extra"}) == 0
    # Re-validating a deleted robot needs a free slot too.
    assert await api.code(CREATE, {"UserID": "@RBT#0"}) == 10008
    assert "@RBT#0" not in api.fake.robots


@pytest.mark.parametrize("fake_options", [{"max_robots": 2}])
async def test_robot_limit_is_configurable(api) -> None:
    await api.create_robots("@RBT#1", "@RBT#2")
    assert await api.code(CREATE, {"UserID": "@RBT#3"}) == 10008


async def test_delete_marks_invalid(api) -> None:
    await api.create_robots("@RBT#1", "@RBT#2")
    assert await api.code(DELETE, {"Robot_Account": "@RBT#1"}) == 0
    assert await listed(api) == ["@RBT#2"]
    # Deleting again is fine: the account still exists, invalid.
    assert await api.code(DELETE, {"Robot_Account": "@RBT#1"}) == 0
    assert await listed(api) == ["@RBT#2"]


async def test_recreating_a_deleted_robot_revalidates_it_in_place(api) -> None:
    await api.create_robots("@RBT#1", "@RBT#2")
    assert await api.code(DELETE, {"Robot_Account": "@RBT#1"}) == 0
    assert await api.code(CREATE, {"UserID": "@RBT#1", "Nick": "back"}) == 0
    assert await listed(api) == ["@RBT#1", "@RBT#2"]
    assert api.fake.robot_profile("@RBT#1") == {"Nick": "back"}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"Robot_Account": None},
        {"Robot_Account": ["@RBT#1"]},
        {"Robot_Account": "@RBT#never"},
        {"Robot_Account": "someone"},
        {"UserID": "@RBT#1"},
    ],
)
async def test_invalid_delete(api, body: dict[str, object]) -> None:
    await api.create_robots("@RBT#1")
    assert await api.code(DELETE, body) == 10004
    assert api.fake.robots == ["@RBT#1"]


async def test_get_all_robots_with_none(api) -> None:
    assert await listed(api) == []


async def test_robot_profile_of_unknown_robot(fake) -> None:
    with pytest.raises(KeyError):
        fake.robot_profile("@RBT#none")
