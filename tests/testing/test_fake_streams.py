"""The fake's ``openim_robot_http_svc/send_stream_msg`` (robot-conversation.md 2.3): a robot's
one-to-one reply in pieces. Over raw HTTP: the documented fields and codes (10004), the
conservative defaults the doc adopts (15 s idle end, 5 calls a second per stream, 12 KB
a message), the choices the fake documents where the page is silent, and what the fake
keeps. The expected values are written from the doc, not read back from the fake.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from tests._clocks import WALL, ManualClock

from tencent_chat_robots import APIError
from tencent_chat_robots.testing import ConnectionDropped, FakeTencentChat, max_in_window

STREAM = "openim_robot_http_svc/send_stream_msg"
SENDMSG = "openim/sendmsg"
MODIFY_C2C = "openim/modify_c2c_msg"
ROBOT = "@RBT#001"
ROBOT2 = "@RBT#002"
USER = "user1"
USER2 = "user2"
START = 1000.0  # the conftest clock's reading at the start
MAX_BYTES = 12_288  # "a message is at most 12 KB" (usage-limits page)
# The size of a text message with an empty text, as compact JSON.
OVERHEAD = len('[{"MsgType":"TIMTextElem","MsgContent":{"Text":""}}]')
ROOM = MAX_BYTES - OVERHEAD  # ASCII bytes of text one message holds


@pytest.fixture
def fake_options(wall: ManualClock) -> dict[str, Any]:
    return {"wall_clock": wall}


@pytest.fixture
def world(fake: FakeTencentChat) -> FakeTencentChat:
    fake.create_robot(ROBOT)
    fake.create_robot(ROBOT2)
    fake.create_user(USER)
    fake.create_user(USER2)
    return fake


def piece(chunk: Any = "hi", key: Any = ..., finish: Any = ..., **overrides: Any) -> dict[str, Any]:
    """A send_stream_msg body from the robot to the user; ``...`` leaves a field out."""
    body: dict[str, Any] = {
        "From_Account": ROBOT,
        "To_Account": USER,
        "Chunk": chunk,
        "MsgKey": key,
        "Finish": finish,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def text(value: str) -> list[dict[str, Any]]:
    return [{"MsgType": "TIMTextElem", "MsgContent": {"Text": value}}]


async def start(api, chunk: str = "hi", **overrides: Any) -> str:
    answer = await api.call(STREAM, piece(chunk, **overrides))
    assert answer["ErrorCode"] == 0
    key: str = answer["MsgKey"]
    return key


async def sendmsg(api, sender: str, recipient: str, value: str, *, random: int) -> Any:
    """An ordinary message through ``openim/sendmsg``; its answer."""
    body = {"From_Account": sender, "To_Account": recipient, "MsgRandom": random}
    answer = await api.call(SENDMSG, {**body, "MsgBody": text(value)})
    assert answer["ErrorCode"] == 0
    return answer


def the_stream(fake: FakeTencentChat, a: str = USER, b: str = ROBOT) -> Any:
    [message] = [m for m in fake.transcript(a, b) if m.stream is not None]
    return message


# --- continuity ---


async def test_a_stream_starts_appends_and_finishes(api, world) -> None:
    first = await api.call(STREAM, piece("hello, "))
    assert first["ErrorCode"] == 0
    key = first["MsgKey"]
    assert isinstance(key, str)
    assert key
    second = await api.call(STREAM, piece("world", key=key))
    last = await api.call(STREAM, piece("!", key=key, finish=1))
    assert (second["MsgKey"], last["MsgKey"]) == (key, key)
    [message] = world.transcript(USER, ROBOT)
    assert (message.sender, message.recipient, message.platform) == (ROBOT, USER, "RESTAPI")
    assert (message.msg_key, message.msg_time) == (key, int(WALL))
    assert (message.text, message.body) == ("hello, world!", text("hello, world!"))
    assert message.texts == ["hello, ", "hello, world", "hello, world!"]
    assert message.stream == "finished"
    assert message.cloud_custom_data is None


async def test_the_msg_key_looks_like_a_sendmsg_key(api, world) -> None:
    sent = await sendmsg(api, ROBOT, USER, "x", random=1)
    key = await start(api)
    # "{n}_{MsgRandom}_{MsgTime}", n unique in the app.
    for value in (sent["MsgKey"], key):
        n, random, msg_time = value.split("_")
        assert n.isdigit()
        assert random.isdigit()
        assert msg_time == str(int(WALL))
    assert key != sent["MsgKey"]


async def test_every_call_without_a_key_starts_another_stream(api, world) -> None:
    one = await start(api, "a")
    two = await start(api, "b")
    assert one != two
    assert await api.code(STREAM, piece("1", key=one)) == 0
    assert await api.code(STREAM, piece("2", key=two, finish=1)) == 0
    assert [(m.text, m.stream) for m in world.transcript(USER, ROBOT)] == [
        ("a1", "open"),
        ("b2", "finished"),
    ]


async def test_finish_on_the_first_call_is_a_one_piece_stream(api, world) -> None:
    key = await start(api, "all at once", finish=1)
    assert await api.code(STREAM, piece("more", key=key)) == 10004
    message = the_stream(world)
    assert (message.text, message.stream, message.texts) == (
        "all at once",
        "finished",
        ["all at once"],
    )


async def test_finish_0_is_no_finish(api, world) -> None:
    key = await start(api, "a", finish=0)
    assert await api.code(STREAM, piece("b", key=key, finish=0)) == 0
    assert await api.code(STREAM, piece("c", key=key)) == 0
    assert (the_stream(world).text, the_stream(world).stream) == ("abc", "open")


async def test_a_call_after_finish_is_refused(api, world) -> None:
    key = await start(api, "done")
    assert await api.code(STREAM, piece("", key=key, finish=1)) == 0
    assert await api.code(STREAM, piece("late", key=key)) == 10004
    assert await api.code(STREAM, piece("", key=key, finish=1)) == 10004  # finishing again too
    message = the_stream(world)
    assert (message.text, message.modified, message.stream) == ("done", 1, "finished")


@pytest.mark.parametrize(
    ("whose", "overrides"),
    [
        ("unknown", {}),
        ("sendmsg", {}),  # an ordinary message's key is no stream's
        ("user2's", {}),  # a stream from the robot to another user
        ("user2's", {"To_Account": USER2, "From_Account": ROBOT2}),
        ("ours", {"To_Account": USER2}),  # the right key, the wrong recipient
        ("ours", {"From_Account": ROBOT2}),  # the right key, another robot
    ],
)
async def test_a_key_that_names_no_stream_of_this_pair_is_refused(
    api, world, whose: str, overrides: dict[str, Any]
) -> None:
    ours = await start(api, "ours")
    theirs = await start(api, "theirs", To_Account=USER2)
    sent = await sendmsg(api, ROBOT, USER, "plain", random=1)
    key = {"unknown": "1_2_3", "sendmsg": sent["MsgKey"], "user2's": theirs, "ours": ours}[whose]
    assert await api.code(STREAM, piece("!", key=key, **overrides)) == 10004
    texts = {m.text for m in world.transcript(USER, ROBOT) + world.transcript(USER2, ROBOT)}
    assert texts == {"ours", "theirs", "plain"}
    # None of these is an arrival of the streams: each was named only by its first call.
    assert len(the_stream(world).stream_arrivals) == 1
    assert len(the_stream(world, USER2).stream_arrivals) == 1


# --- the checks, in order ---


@pytest.mark.parametrize(
    "overrides",
    [
        {"From_Account": ...},
        {"From_Account": ""},
        {"From_Account": 5},
        {"From_Account": None},
        {"To_Account": ...},
        {"To_Account": ""},
        {"To_Account": ["user1"]},
        {"From_Account": USER},  # a user is not the robot
        {"From_Account": "administrator"},  # nor is the admin
        {"From_Account": "@RBT#ghost"},
        {"To_Account": "ghost"},  # not imported
        {"To_Account": "@RBT#ghost"},
        {"Chunk": ...},
        {"Chunk": None},
        {"Chunk": 5},
        {"Chunk": ["a"]},
        {"Chunk": {"Text": "a"}},
        {"Chunk": True},
        {"Finish": 2},
        {"Finish": -1},
        {"Finish": "1"},
        {"Finish": 1.0},
        {"Finish": True},
        {"Finish": None},
        {"MsgKey": ""},
        {"MsgKey": None},
        {"MsgKey": 5},
        {"MsgKey": "nope"},
        # Every other failure comes before the size (10004, not 80002).
        {"Chunk": "x" * (ROOM + 1), "Finish": 2},
        {"Chunk": "x" * (ROOM + 1), "To_Account": "ghost"},
        {"Chunk": "x" * (ROOM + 1), "MsgKey": "nope"},
    ],
)
async def test_first_call_refusals_store_nothing(api, world, overrides: dict[str, Any]) -> None:
    assert await api.code(STREAM, piece(**overrides)) == 10004
    assert world.transcript(USER, ROBOT) == []
    assert world.messages_snapshot()["conversations"] == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"Chunk": ...},
        {"Chunk": 7},
        {"Finish": 2},
        {"Finish": False},
        {"From_Account": 1},
        {"To_Account": ""},
    ],
)
async def test_later_call_refusals_append_nothing(api, world, overrides: dict[str, Any]) -> None:
    key = await start(api, "kept")
    assert await api.code(STREAM, piece(key=key, **overrides)) == 10004
    message = the_stream(world)
    assert (message.text, message.modified, message.stream) == ("kept", 0, "open")
    assert await api.code(STREAM, piece("!", key=key)) == 0  # the stream is still open


async def test_a_deleted_robot_can_no_longer_stream(api, world) -> None:
    key = await start(api, "a")
    assert await api.code("openim_robot_http_svc/delete_robot", {"Robot_Account": ROBOT}) == 0
    assert await api.code(STREAM, piece("b", key=key)) == 10004
    assert await api.code(STREAM, piece("c")) == 10004
    assert the_stream(world).text == "a"


@pytest.mark.parametrize(
    "overrides",
    [
        {"To_Account": "administrator"},  # an imported account
        {"To_Account": ROBOT2},  # a robot is an account too (no callback: see below)
        {"Chunk": ""},
        {"Finish": 0},
        {"Finish": 1},
    ],
)
async def test_first_call_accepts(api, world, overrides: dict[str, Any]) -> None:
    assert await api.code(STREAM, piece(**overrides)) == 0


# --- the idle end: 15 s without an accepted call ---


async def test_a_gap_of_15_s_passes_and_a_longer_one_ends_the_stream(
    api, world, clock, wall
) -> None:
    key = await start(api, "a")
    clock.advance(15.0)
    assert await api.code(STREAM, piece("b", key=key)) == 0
    clock.advance(15.0)  # measured from the last accepted call, not the first
    assert await api.code(STREAM, piece("c", key=key)) == 0
    clock.advance(15.001)
    assert await api.code(STREAM, piece("d", key=key)) == 10004
    message = the_stream(world)
    assert (message.text, message.stream) == ("abc", "expired")
    assert message.stream_arrivals == (START, START + 15, START + 30, START + 45.001)
    clock.advance(1.0)
    assert await api.code(STREAM, piece("", key=key, finish=1)) == 10004  # stays ended
    assert the_stream(world).stream == "expired"


async def test_refused_calls_do_not_keep_a_stream_alive(api, world, clock) -> None:
    key = await start(api, "a")
    clock.advance(10.0)
    assert await api.code(STREAM, piece(5, key=key)) == 10004
    clock.advance(5.5)
    assert await api.code(STREAM, piece("b", key=key)) == 10004
    assert the_stream(world).stream == "expired"


async def test_an_idle_stream_reads_as_expired_without_another_call(api, world, clock) -> None:
    await start(api, "a")
    clock.advance(15.0)
    assert the_stream(world).stream == "open"
    clock.advance(0.001)
    assert the_stream(world).stream == "expired"
    [conversation] = (await api.http.get("/_fake/messages")).json()["conversations"]
    assert conversation["messages"][0]["stream"] == "expired"


async def test_a_finished_stream_never_expires(api, world, clock) -> None:
    await start(api, "a", finish=1)
    clock.advance(3600.0)
    assert the_stream(world).stream == "finished"


# --- 5 calls a second per stream ---


async def test_the_6th_call_in_a_second_is_refused_then_the_window_slides(
    api, world, clock
) -> None:
    key = await start(api, "0")  # the first call is the stream's first arrival
    codes = [await api.code(STREAM, piece(str(n), key=key)) for n in range(1, 6)]
    assert codes == [0, 0, 0, 0, 60007]
    message = the_stream(world)
    assert (message.text, message.modified) == ("01234", 4)  # the 6th appended nothing
    clock.advance(0.999)
    assert await api.code(STREAM, piece("x", key=key)) == 60007  # (t-1, t] still holds them
    clock.advance(0.001)  # exactly 1 s after the first six: they have left the window
    assert await api.code(STREAM, piece("5", key=key)) == 0
    message = the_stream(world)
    assert message.text == "012345"
    assert message.stream_arrivals == (START,) * 6 + (START + 0.999, START + 1.0)
    # The most calls the server saw for this stream in any second, refused ones included.
    assert max_in_window(message.stream_arrivals) == 7


async def test_refused_arrivals_count_against_the_stream(api, world) -> None:
    key = await start(api, "a")
    assert [await api.code(STREAM, piece(None, key=key)) for _ in range(4)] == [10004] * 4
    assert await api.code(STREAM, piece("b", key=key)) == 60007
    assert the_stream(world).text == "a"


async def test_each_stream_has_its_own_budget(api, world) -> None:
    one = await start(api, "a")
    assert [await api.code(STREAM, piece("", key=one)) for _ in range(5)] == [0] * 4 + [60007]
    two = await start(api, "b")
    assert [await api.code(STREAM, piece("", key=two)) for _ in range(5)] == [0] * 4 + [60007]
    # Another pair naming a stream's key is refused, but is no arrival of it.
    three = await start(api, "c")
    for _ in range(5):
        assert await api.code(STREAM, piece("", key=three, From_Account=ROBOT2)) == 10004
    assert [await api.code(STREAM, piece("", key=three)) for _ in range(4)] == [0] * 4


async def test_the_per_stream_limit_comes_after_the_parameters_and_before_the_size(
    api, world
) -> None:
    key = await start(api, "a")
    for _ in range(4):
        assert await api.code(STREAM, piece("", key=key)) == 0
    assert await api.code(STREAM, piece("", key=key, finish=2)) == 10004
    assert await api.code(STREAM, piece("x" * ROOM, key=key)) == 60007


async def test_a_finished_stream_answers_10004_not_60007(api, world) -> None:
    key = await start(api, "a")
    for n in range(4):
        assert await api.code(STREAM, piece("", key=key, finish=1 if n == 3 else 0)) == 0
    assert await api.code(STREAM, piece("", key=key)) == 10004


@pytest.mark.parametrize("fake_options", [{"rate_limit": 3}])
async def test_the_api_limit_still_applies_to_the_path(api, world, fake_options) -> None:
    key = await start(api, "a")
    assert [await api.code(STREAM, piece("", key=key)) for _ in range(3)] == [0, 0, 60007]
    # Refused by the app before the stream's rules: not an arrival of the stream.
    assert len(the_stream(world).stream_arrivals) == 3


# --- 12 KB a message ---


async def test_a_first_piece_of_exactly_12288_bytes_passes_one_more_is_80002(api, world) -> None:
    assert await api.code(STREAM, piece("x" * (ROOM + 1))) == 80002
    assert world.transcript(USER, ROBOT) == []
    key = await start(api, "x" * ROOM, finish=0)
    assert await api.code(STREAM, piece("", key=key)) == 0  # an empty piece adds nothing
    assert await api.code(STREAM, piece("y", key=key)) == 80002
    message = the_stream(world)
    assert (len(message.text), message.stream) == (ROOM, "open")
    assert await api.code(STREAM, piece("", key=key, finish=1)) == 0


async def test_the_whole_text_is_measured_not_the_piece(api, world) -> None:
    key = await start(api, "x" * (ROOM - 10))
    assert await api.code(STREAM, piece("y" * 10, key=key)) == 0
    assert await api.code(STREAM, piece("z", key=key)) == 80002
    assert the_stream(world).text == "x" * (ROOM - 10) + "y" * 10


@pytest.mark.parametrize(
    ("char", "size"),
    [
        ("é", 2),  # UTF-8, not escaped
        ("中", 3),
        ("😀", 4),
        ('"', 2),  # escaped in JSON: \"
        ("\\", 2),
        ("\n", 2),
        ("\x01", 6),  # \u0001
        ("<", 1),  # markup is not escaped
    ],
)
async def test_multi_byte_and_escaped_characters_at_the_limit(
    api, world, char: str, size: int
) -> None:
    key = await start(api, "x" * (ROOM - size))
    assert await api.code(STREAM, piece(char, key=key)) == 0
    key = await start(api, "x" * (ROOM - size + 1))
    assert await api.code(STREAM, piece(char, key=key)) == 80002
    # The same on a first piece.
    assert await api.code(STREAM, piece("x" * (ROOM - size) + char)) == 0
    assert await api.code(STREAM, piece("x" * (ROOM - size + 1) + char)) == 80002


# --- empty pieces and hostile input ---


async def test_empty_pieces_are_accepted_and_recorded(api, world, wall) -> None:
    key = await start(api, "")
    wall.advance(1.0)
    assert await api.code(STREAM, piece("", key=key)) == 0
    wall.advance(1.0)
    assert await api.code(STREAM, piece("", key=key, finish=1)) == 0
    message = the_stream(world)
    assert (message.text, message.body, message.stream) == ("", text(""), "finished")
    assert message.texts == ["", "", ""]
    assert [r.at for r in message.revisions] == [WALL, WALL + 1, WALL + 2]


HOSTILE = [
    "<script>alert(1)</script>",
    "<b>bold</b> &amp; &lt;",
    "'; DROP TABLE messages; --",
    "${jndi:ldap://x/a} {{7*7}} %s%n",
    "\u202eRTL override\u202c",
    "zero\u200bwidth\ufeffBOM",
    "e\u0301 combining, Å decomposed",
    "😀👍🏽🏳️‍🌈 emoji sequences",
    "nul\x00 bell\x07 del\x7f",
    "\r\n\t",
    "@RBT#001 a mention in the text",
    "\U0010ffff last code point",
]


@pytest.mark.parametrize("chunk", HOSTILE)
async def test_any_text_is_stored_verbatim(api, world, chunk: str) -> None:
    key = await start(api, chunk)
    assert await api.code(STREAM, piece(chunk, key=key, finish=1)) == 0
    message = the_stream(world)
    assert message.text == chunk + chunk
    assert message.body == text(chunk + chunk)
    [conversation] = (await api.http.get("/_fake/messages")).json()["conversations"]
    assert conversation["messages"][0]["text"] == chunk + chunk


async def test_a_lone_surrogate_is_stored_as_sent_and_counts_3_bytes(api, world) -> None:
    raw = b'{"From_Account":"@RBT#001","To_Account":"user1","Chunk":"\\ud800"}'
    answer = await api.call(STREAM, raw=raw)
    assert answer["ErrorCode"] == 0
    assert the_stream(world).text == "\ud800"
    key = await start(api, "x" * (ROOM - 3))
    assert await api.code(STREAM, piece("\ud800", key=key)) == 0
    key = await start(api, "x" * (ROOM - 2))
    assert await api.code(STREAM, piece("\ud800", key=key)) == 80002


# --- what the fake keeps ---


async def test_the_transcript_shows_the_stream_in_order_with_its_revisions(
    api, world, clock, wall
) -> None:
    await sendmsg(api, USER, ROBOT, "question", random=1)
    chunks = ["The ", "answer ", "is ", "42", "."]
    key = await start(api, chunks[0])
    for n, chunk in enumerate(chunks[1:], start=1):
        clock.advance(0.4)
        wall.advance(0.4)
        if n == 2:  # another message between two pieces comes after the stream
            await sendmsg(api, ROBOT, USER, "aside", random=2)
        assert await api.code(STREAM, piece(chunk, key=key, finish=int(n == 4))) == 0
    question, stream, aside = world.transcript(ROBOT, USER)
    assert (question.text, aside.text) == ("question", "aside")
    assert (question.stream, question.stream_arrivals) == (None, ())
    assert stream.text == "".join(chunks) == "The answer is 42."
    assert stream.texts == [
        "The ",
        "The answer ",
        "The answer is ",
        "The answer is 42",
        "The answer is 42.",
    ]
    times = [r.at for r in stream.revisions]
    assert times == sorted(set(times))  # strictly increasing update times
    assert times == pytest.approx([WALL + 0.4 * n for n in range(5)])
    assert [r.body for r in stream.revisions] == [text(t) for t in stream.texts]
    assert stream.msg_time == int(WALL)  # the first piece's
    assert stream.stream_arrivals == pytest.approx(tuple(START + 0.4 * n for n in range(5)))
    assert stream.modified == 4


async def test_the_messages_document_has_the_stream_fields(api, world, clock) -> None:
    await sendmsg(api, ROBOT, USER, "plain", random=1)
    key = await start(api, "a")
    clock.advance(0.5)
    assert await api.code(STREAM, piece(5, key=key)) == 10004
    document = (await api.http.get("/_fake/messages")).json()
    assert document == world.messages_snapshot()
    [conversation] = document["conversations"]
    plain, streamed = conversation["messages"]
    assert (plain["stream"], plain["stream_arrivals"]) == (None, [])
    assert streamed["msg_key"] == key
    assert (streamed["stream"], streamed["stream_arrivals"]) == ("open", [START, START + 0.5])
    assert streamed["revisions"] == [{"at": WALL, "text": "a"}]


async def test_a_stream_to_a_robot_fires_no_callback(world: FakeTencentChat, api) -> None:
    seen: list[bytes] = []

    async def webhook(scope: Any, receive: Any, send: Any) -> None:
        seen.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"ActionStatus":"OK","ErrorCode":0}'})

    world.set_callback(webhook)
    try:
        key = await start(api, "robot to robot", To_Account=ROBOT2)
        assert await api.code(STREAM, piece("!", key=key, To_Account=ROBOT2, finish=1)) == 0
        with anyio.fail_after(5):
            await world.wait_deliveries()
        assert seen == []
        # A sendmsg to the same robot does fire one (the webhook works).
        body = {"From_Account": ROBOT, "To_Account": ROBOT2, "MsgRandom": 1, "MsgBody": text("x")}
        assert await api.code(SENDMSG, body) == 0
        with anyio.fail_after(5):
            await world.wait_deliveries()
        assert len(seen) == 1
    finally:
        await world.aclose()


async def test_modify_c2c_replaces_a_streamed_message_like_any_other(api, world, wall) -> None:
    key = await start(api, "ab")
    modify = {"From_Account": ROBOT, "To_Account": USER, "MsgKey": key}
    wall.advance(1.0)
    assert await api.code(MODIFY_C2C, {**modify, "MsgBody": text("replaced")}) == 0
    message = the_stream(world)
    assert (message.text, message.stream, message.texts) == ("replaced", "open", ["ab", "replaced"])
    # The next piece is appended to the stream's own text, which becomes the body again.
    wall.advance(1.0)
    assert await api.code(STREAM, piece("c", key=key, finish=1)) == 0
    message = the_stream(world)
    assert message.texts == ["ab", "replaced", "abc"]
    assert (message.text, message.body, message.stream) == ("abc", text("abc"), "finished")
    # A finished stream's message can still be modified, as any message.
    assert await api.code(MODIFY_C2C, {**modify, "CloudCustomData": "cd"}) == 0
    message = the_stream(world)
    assert (message.text, message.cloud_custom_data, message.stream) == ("abc", "cd", "finished")


async def test_custom_data_given_by_a_modification_counts_in_the_size(api, world) -> None:
    key = await start(api, "x" * (ROOM - 3))
    modify = {"From_Account": ROBOT, "To_Account": USER, "MsgKey": key, "CloudCustomData": "abc"}
    assert await api.code(MODIFY_C2C, modify) == 0  # exactly 12,288 bytes
    assert await api.code(STREAM, piece("", key=key)) == 0
    assert await api.code(STREAM, piece("y", key=key)) == 80002
    message = the_stream(world)
    assert (message.cloud_custom_data, message.revisions[-1].cloud_custom_data) == ("abc", "abc")


# --- faults, and the route through the SDK's client ---


async def test_an_injected_internal_error_appends_nothing(api, world) -> None:
    key = await start(api, "a")
    world.fail_next(STREAM, 10002)
    assert await api.code(STREAM, piece("b", key=key)) == 10002
    message = the_stream(world)
    assert (message.text, len(message.stream_arrivals)) == ("a", 1)  # not an arrival either
    assert await api.code(STREAM, piece("b", key=key)) == 0  # the retry
    assert the_stream(world).text == "ab"


async def test_a_connection_dropped_after_processing_appends_the_piece(api, world) -> None:
    key = await start(api, "a")
    world.drop_next(STREAM, after_processing=True)
    with pytest.raises(ConnectionDropped):
        await api.post(STREAM, piece("b", key=key))
    assert the_stream(world).text == "ab"  # it happened; the client cannot know
    world.drop_next(STREAM)
    with pytest.raises(ConnectionDropped):
        await api.post(STREAM, piece("c", key=key))
    assert the_stream(world).text == "ab"  # dropped before: nothing
    assert [c.fault for c in world.calls] == [None, "dropped", "dropped"]


async def test_the_sdk_client_streams_through_the_fake(world: FakeTencentChat, clock) -> None:
    async with world.client() as chat:
        key = await chat.send_stream_chunk(ROBOT, USER, "Hel")
        clock.advance(0.3)
        assert await chat.send_stream_chunk(ROBOT, USER, "lo", msg_key=key) == key
        clock.advance(0.3)
        assert await chat.send_stream_chunk(ROBOT, USER, "!", msg_key=key, finish=True) == key
        with pytest.raises(APIError) as caught:
            await chat.send_stream_chunk(ROBOT, USER, "late", msg_key=key)
    assert caught.value.code == 10004
    message = the_stream(world)
    assert (message.msg_key, message.text, message.stream) == (key, "Hello!", "finished")
    calls = world.calls
    assert {c.endpoint for c in calls} == {STREAM}
    assert [c.error_code for c in calls] == [0, 0, 0, 10004]
    assert calls[0].body == {"From_Account": ROBOT, "To_Account": USER, "Chunk": "Hel"}
    assert calls[2].body == {
        "From_Account": ROBOT,
        "To_Account": USER,
        "Chunk": "!",
        "MsgKey": key,
        "Finish": 1,
    }
