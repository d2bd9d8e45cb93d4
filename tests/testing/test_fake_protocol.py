"""The REST envelope, routing, query-string and UserSig checks, and their precedence."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tencent_chat_robots._usersig import generate_usersig
from tencent_chat_robots.testing import FakeTencentChat

GET_ALL = "openim_robot_http_svc/get_all_robots"
CREATE = "openim_robot_http_svc/create_robot"
ROOM_ADD = "room_engine_http_srv/add_robot"
ROOM_DELETE = "room_engine_http_srv/delete_robot"
GROUP_ADD = "group_open_avchatroom_http_svc/add_robots"
REQUEST_ID = re.compile(r"Id-[0-9a-f]{32}-O-Seq-(\d+)")


async def test_success_envelope(api) -> None:
    response = await api.post(GET_ALL, {})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "ActionStatus": "OK",
        "ErrorCode": 0,
        "ErrorInfo": "",
        "Robot_Account": [],
    }


async def test_failure_envelope(api) -> None:
    envelope = await api.call(GET_ALL, usersig=None)
    assert envelope["ActionStatus"] == "FAIL"
    assert envelope["ErrorCode"] == 70002
    assert envelope["ErrorInfo"]
    assert "Robot_Account" not in envelope


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_only_post_is_served(api, method: str) -> None:
    assert await api.code(GET_ALL, method=method) == 60002


@pytest.mark.parametrize(
    "path",
    [
        "/v4/openim_robot_http_svc/no_such_command",
        "/v4/no_such_service/create_robot",
        "/v4/openim_robot_http_svc",
        "/v4/openim_robot_http_svc/create_robot/extra",
        "/v4/openim_robot_http_svc/create_robot/",
        "/v3/openim_robot_http_svc/create_robot",
        "/openim_robot_http_svc/create_robot",
        "/",
    ],
)
async def test_bad_paths(api, path: str) -> None:
    assert await api.code(CREATE, {"UserID": "@RBT#1"}, path=path) == 60002
    assert api.fake.robots == []


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"sdkappid": None}, 60012),
        ({"sdkappid": ""}, 60012),
        ({"identifier": None}, 60012),
        ({"identifier": ""}, 60012),
        ({"sdkappid": "abc"}, 60002),
        ({"sdkappid": "-1400000000"}, 60002),
        ({"sdkappid": "1400000000.0"}, 60002),
        ({"random": None}, 60002),
        ({"random": ""}, 60002),
        ({"random": "4294967296"}, 60002),
        ({"random": "-1"}, 60002),
        ({"random": "12ab"}, 60002),
        ({"contenttype": None}, 60002),
        ({"contenttype": "xml"}, 60002),
        ({"contenttype": "JSON"}, 60002),
        ({"sdkappid": "1400000001"}, 60006),
        ({"usersig": None}, 70002),
        ({"usersig": ""}, 70002),
        ({"usersig": "not-a-usersig"}, 70003),
    ],
)
async def test_query_checks(api, query: dict[str, str | None], code: int) -> None:
    assert await api.code(CREATE, {"UserID": "@RBT#1"}, **query) == code
    assert api.fake.robots == []


@pytest.mark.parametrize("nonce", ["0", "4294967295", "00042"])
async def test_random_bounds_are_inclusive(api, nonce: str) -> None:
    assert await api.code(GET_ALL, random=nonce) == 0


async def test_usersig_for_another_app(api) -> None:
    sig = generate_usersig(1400000001, api.fake.secret_key, api.fake.admin)
    assert await api.code(GET_ALL, usersig=sig) == 70014


async def test_usersig_for_another_identifier(api) -> None:
    assert await api.code(GET_ALL, usersig=api.fake.usersig("someone")) == 70013


async def test_usersig_with_wrong_key(api) -> None:
    sig = generate_usersig(api.fake.sdkappid, "another-key", api.fake.admin)
    assert await api.code(GET_ALL, usersig=sig) == 70009


async def test_expired_usersig(api) -> None:
    signed = int(time.time()) - 100
    sig = generate_usersig(api.fake.sdkappid, api.fake.secret_key, api.fake.admin, 10, now=signed)
    assert await api.code(GET_ALL, usersig=sig) == 70001


async def test_non_admin_identifier(api) -> None:
    envelope = await api.call(GET_ALL, identifier="someone", usersig=api.fake.usersig("someone"))
    assert envelope["ErrorCode"] == 60010


async def test_identity_is_configurable() -> None:
    fake = FakeTencentChat(sdkappid=1400000042, secret_key="k2", admin="boss")
    sig = generate_usersig(1400000042, "k2", "boss")
    query = f"sdkappid=1400000042&identifier=boss&usersig={sig}&random=1&contenttype=json"
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as http:
        response = await http.post(f"/v4/{GET_ALL}?{query}", content=b"{}")
        assert response.json()["ErrorCode"] == 0
        response = await http.post(f"/v4/{GET_ALL}?{query.replace('=boss', '=administrator')}")
        assert response.json()["ErrorCode"] == 70013
        response = await http.post(f"/v4/{GET_ALL}?{query.replace('42', '00')}", content=b"{}")
        assert response.json()["ErrorCode"] == 60006


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'"text"',
        b"42",
        b"null",
        b"\xff\xfe",
        b'{"UserID": ',
        b"[" * 100_000,
    ],
)
async def test_body_must_be_a_json_object(api, raw: bytes) -> None:
    assert await api.code(CREATE, raw=raw) == 60003


async def test_unknown_body_fields_are_ignored(api) -> None:
    assert await api.code(CREATE, {"UserID": "@RBT#1", "Extra": [1, 2]}) == 0
    assert await api.code(GET_ALL, {"Anything": True}) == 0


@pytest.mark.parametrize(
    ("query", "raw", "code"),
    [
        # Each case breaks two rules; the first in precedence order wins.
        ({"sdkappid": None, "usersig": "garbage"}, b"[]", 60012),
        ({"identifier": None, "random": "x"}, b"[]", 60012),
        ({"sdkappid": "abc", "usersig": None}, b"[]", 60002),
        ({"contenttype": "xml", "sdkappid": "1400000001"}, b"[]", 60002),
        ({"random": None, "sdkappid": "1400000001"}, b"[]", 60002),
        ({"sdkappid": "1400000001", "usersig": None}, b"[]", 60006),
        ({"usersig": None, "identifier": "someone"}, b"[]", 70002),
        ({"usersig": "garbage", "identifier": "someone"}, b"[]", 70003),
        ({"identifier": "someone"}, b"[]", 70013),  # admin's sig, other identifier
        ({}, b"[]", 60003),
    ],
)
async def test_precedence(api, query: dict[str, str | None], raw: bytes, code: int) -> None:
    assert await api.code(CREATE, raw=raw, **query) == code


async def test_non_admin_precedes_body_check(api) -> None:
    sig = api.fake.usersig("someone")
    assert await api.code(CREATE, raw=b"[]", identifier="someone", usersig=sig) == 60010


async def test_bad_path_precedes_query_checks(api) -> None:
    code = await api.code(CREATE, path="/v4/openim_robot_http_svc/nope", sdkappid=None)
    assert code == 60002


async def test_room_answers_carry_request_id(api) -> None:
    api.fake.create_room("room-1")
    await api.create_robots("@RBT#1")
    ok = await api.call(ROOM_ADD, {"RoomId": "room-1", "Member_Account": "@RBT#1"})
    refused = await api.call(ROOM_ADD, {"RoomId": "nope", "Member_Account": "@RBT#1"})
    unauthenticated = await api.call(ROOM_DELETE, {}, usersig=None)
    bad_command = await api.call("", path="/v4/room_engine_http_srv/no_such_command")
    envelopes = [ok, refused, unauthenticated, bad_command]
    assert [e["ErrorCode"] for e in envelopes] == [0, 100004, 70002, 60002]
    matches = [REQUEST_ID.fullmatch(e["RequestId"]) for e in envelopes]
    assert all(matches)
    assert len({e["RequestId"] for e in envelopes}) == 4
    seqs = [int(m.group(1)) for m in matches if m]
    assert seqs == sorted(seqs)


async def test_other_services_have_no_request_id(api) -> None:
    assert "RequestId" not in await api.call(GET_ALL)
    assert "RequestId" not in await api.call(GROUP_ADD, {})
    assert "RequestId" not in await api.call(GET_ALL, usersig=None)


async def test_query_may_come_in_any_order_and_repeat(api) -> None:
    # Duplicates: the first value counts.
    sig = api.usersig
    path = (
        f"/v4/{GET_ALL}?contenttype=json&random=7&usersig={sig}&identifier=administrator"
        "&sdkappid=1400000000&sdkappid=1"
    )
    response = await api.http.post(path, content=b"{}")
    assert response.json()["ErrorCode"] == 0
