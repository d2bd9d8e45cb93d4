"""The endpoint table and the pacing derived from it, checked against the vendor's pages."""

from __future__ import annotations

import logging

import pytest

from tencent_chat_robots import ENDPOINTS, Call, Endpoint, RateLimiter, TencentChat, ValidationError

# Written from the vendor's pages (../shared/api-docs/): path -> calls per second.
DOCUMENTED_RATES = {
    "openim_robot_http_svc/create_robot": 200,
    "openim_robot_http_svc/get_all_robots": 200,
    "openim_robot_http_svc/delete_robot": 200,
    "room_engine_http_srv/add_robot": 200,
    "room_engine_http_srv/delete_robot": 200,
    "group_open_avchatroom_http_svc/add_robots": 200,
    "group_open_avchatroom_http_svc/del_robots": 200,
    "live_engine_http_srv/add_robot": 100,
    "live_engine_http_srv/del_robot": 100,
    "live_engine_http_srv/get_robot": 100,
    # robot-conversation.md, 2.1, 2.2 and 2.4: 200 calls/s each.
    "openim/sendmsg": 200,
    "group_open_http_svc/send_group_msg": 200,
    "openim/modify_c2c_msg": 200,
    "openim/modify_group_msg": 200,
    "openim_robot_http_svc/send_stream_msg": 200,
}
LIVE = "live_engine_http_srv/add_robot"
ROOM = "room_engine_http_srv/add_robot"


def test_the_table_has_one_row_per_documented_api_with_its_documented_rate() -> None:
    assert {spec.path: spec.documented_rate for spec in ENDPOINTS} == DOCUMENTED_RATES
    assert set(Endpoint.ALL) == set(DOCUMENTED_RATES)


def test_every_row_is_a_client_method_and_a_call_constructor_and_a_cli_name() -> None:
    names = set()
    for spec in ENDPOINTS:
        assert callable(getattr(TencentChat, spec.method)), spec.method
        assert callable(getattr(Call, spec.method)), spec.method
        names.add(spec.cli)
    assert len(names) == len(ENDPOINTS)  # no two APIs share a command-line name


def test_by_default_each_api_is_paced_at_95_percent_of_its_own_rate() -> None:
    chat = TencentChat(1400000000, "key")
    assert {path: chat.rate_for(path) for path in DOCUMENTED_RATES} == {
        path: rate * 0.95 for path, rate in DOCUMENTED_RATES.items()
    }


@pytest.mark.parametrize(
    ("rate_limit", "room", "live"),
    [
        (190, 190, 95),  # one number is the 200/s APIs' pace; others get the same share
        (100, 100, 50),
        (200, 200, 100),
        (400, 200, 100),  # never above the documented rate unless the API is named
    ],
)
def test_one_number_applies_to_each_api_as_a_share_of_its_own_rate(
    rate_limit: float, room: float, live: float
) -> None:
    chat = TencentChat(1400000000, "key", rate_limit=rate_limit)
    assert (chat.rate_for(ROOM), chat.rate_for(LIVE)) == (room, live)


def test_a_named_api_is_paced_exactly_as_given_the_others_by_default() -> None:
    chat = TencentChat(1400000000, "key", rate_limit={"add_robot_to_room": 400, LIVE: 150})
    assert chat.rate_for(ROOM) == 400  # a raised quota is per API
    assert chat.rate_for(LIVE) == 150
    assert chat.rate_for("room_engine_http_srv/delete_robot") == 190
    assert chat.rate_for("live_engine_http_srv/get_robot") == 95


def test_a_limiter_made_by_hand_follows_the_same_rule_and_paces_its_own_keys_as_given() -> None:
    limiter = RateLimiter(190)
    assert limiter.rate_for(LIVE) == 95
    assert limiter.rate_for("my/own-key") == 190
    assert RateLimiter(1000).rate_for("my/own-key") == 1000


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ({"add_robot_to_rooom": 10}, "names no API"),
        ({ROOM: 0}, r"rates\['room_engine_http_srv/add_robot'\] must be"),
        ({ROOM: float("nan")}, "must be a finite number"),
        ({7: 10}, "names no API"),
    ],
)
def test_bad_rates_are_refused_at_construction(rates: dict[object, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TencentChat(1400000000, "key", rate_limit=rates)  # type: ignore[arg-type]


def test_a_pace_above_95_percent_of_a_documented_rate_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="tencent_chat_robots"):
        TencentChat(1400000000, "key", rate_limit=250)
    assert "above 95% of its documented 200/s" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tencent_chat_robots"):
        TencentChat(1400000000, "key")
        TencentChat(1400000000, "key", rate_limit={"add_robot_to_room": 400})  # named: meant
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("call", "body"),
    [
        (
            Call.add_robots_to_live_room("live-1", ["@RBT#1", "@RBT#2"]),
            {"RoomId": "live-1", "RobotList_Account": ["@RBT#1", "@RBT#2"]},
        ),
        (
            Call.remove_robots_from_live_room("live-1", ["@RBT#1"]),
            {"RoomId": "live-1", "RobotList_Account": ["@RBT#1"]},
        ),
        (Call.get_live_room_robots("live-1"), {"RoomId": "live-1"}),
    ],
)
def test_live_room_bodies_carry_the_documented_fields(call: Call[object], body: object) -> None:
    from tencent_chat_robots._models import converter

    assert converter.unstructure(call.body) == body


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("live-1", ["@RBT#1", "@RBT#2", "@RBT#3", "@RBT#4"]), "at most 3"),
        (("r" * 49, ["@RBT#1"]), "1 to 48 UTF-8 bytes, got 49"),
        (("房" * 17, ["@RBT#1"]), "got 51"),  # bytes, not characters
        (("", ["@RBT#1"]), "got 0"),
        (("live-1", []), "must not be empty"),
        (("live-1", "@RBT#1"), "must be a list"),
        (("live-1", ["@RBT#1", ""]), r"\[1\] must be a non-empty"),
        (("live-\ud800", ["@RBT#1"]), "not valid Unicode"),
    ],
)
def test_live_room_rules_are_checked_before_sending(
    args: tuple[object, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Call.add_robots_to_live_room(*args)  # type: ignore[arg-type]


def test_a_robot_named_twice_counts_once_and_a_removal_may_name_more_than_three() -> None:
    Call.add_robots_to_live_room("live-1", ["@RBT#1", "@RBT#1", "@RBT#2", "@RBT#3"])
    # The room holds three at most; taking out four names is harmless.
    Call.remove_robots_from_live_room("live-1", ["@RBT#1", "@RBT#2", "@RBT#3", "@RBT#4"])


def test_a_huge_list_is_refused_by_its_length_before_it_is_read() -> None:
    robots = ["@RBT#1", 5, *["@RBT#2"] * 2_000_000]  # an item of the wrong type, early
    with pytest.raises(ValidationError, match="names 2000002 robots"):
        Call.add_robots_to_live_room("live-1", robots)  # type: ignore[list-item]


def test_a_huge_bad_value_is_quoted_short() -> None:
    with pytest.raises(ValidationError) as caught:
        Call.get_live_room_robots("\ud800" * 1_000_000)
    assert len(str(caught.value)) < 200


def test_any_sequence_of_robots_is_taken_and_copied() -> None:
    from collections import deque

    call = Call.add_robots_to_live_room("live-1", deque(["@RBT#1", "@RBT#2"]))
    assert call.body.robot_accounts == ("@RBT#1", "@RBT#2")  # type: ignore[attr-defined]
    assert call.key() == ["add_robots_to_live_room", "live-1", ["@RBT#1", "@RBT#2"]]


def test_three_robots_fit_and_a_list_is_copied() -> None:
    robots = ["@RBT#1", "@RBT#2", "@RBT#3"]
    call = Call.add_robots_to_live_room("live-1", robots)
    robots.append("@RBT#4")
    assert call.body.robot_accounts == ("@RBT#1", "@RBT#2", "@RBT#3")  # type: ignore[attr-defined]
    assert Call.from_key(call.key()) == call
