"""Streaming replies on a virtual clock: coalescing, intervals, finishing on every exit
path, retries that never reorder nor repeat a piece, and the low-level chunk call.

The rules are robot-conversation.md's 2.3 (``send_stream_msg``: ``Chunk`` appended,
``MsgKey`` from the first answer on, ``Finish: 1`` on the last; 5 calls a second per
stream and 15 s of idleness for the newer API, taken as the conservative defaults) and
2.4 (a group reply: ``send_group_msg``, then ``modify_group_msg`` about once a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any

import anyio
import attrs
import pytest

from tencent_chat_robots import (
    APIConnectionError,
    Call,
    ClientClosedError,
    InternalServerError,
    RateLimiter,
    RawResponse,
    StreamClosedError,
    StreamError,
    StreamInterruptedError,
    StreamReply,
    TencentChat,
    TencentChatError,
    ValidationError,
)

from ._virtual_time import max_in_window, run_virtual
from .conftest import ADMIN, BASE_URL, SDKAPPID, SECRET_KEY

STREAM = "/v4/openim_robot_http_svc/send_stream_msg"
GROUP_SEND = "/v4/group_open_http_svc/send_group_msg"
GROUP_MODIFY = "/v4/openim/modify_group_msg"
ROBOT, USER, GROUP = "@RBT#001", "user1", "@GRP#1"

OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}

# A fault the server meets on one call: an answer with this code and nothing done, a
# connection refused before anything was sent, or one dropped after the server acted.
Fault = int | str


@attrs.define
class Arrival:
    at: float
    path: str
    body: dict[str, Any]
    answered: bool = False


class StreamServer:
    """A transport that acts as the documented server for the three streaming calls."""

    def __init__(self, *, latency: float = 0.01, faults: dict[int, Fault] | None = None):
        self.latency = latency
        self.faults = dict(faults or {})  # by arrival number, from 0
        self.arrivals: list[Arrival] = []
        self.streams: dict[str, list[str]] = {}
        self.finished: set[str] = set()
        self.group_texts: dict[int, list[str]] = {}  # a group message's texts, in order
        self.randoms: set[int] = set()
        self.closed = False

    # The Transport protocol's signature.
    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        body = json.loads(content)
        path = url.split("?")[0].removeprefix(BASE_URL)
        number = len(self.arrivals)
        arrival = Arrival(loop.time(), path, body)
        self.arrivals.append(arrival)
        await asyncio.sleep(self.latency / 2)
        fault = self.faults.get(number)
        if fault == "refused":
            raise APIConnectionError("connection refused", request_sent=False)
        if isinstance(fault, int):
            answer: dict[str, Any] = {
                "ActionStatus": "FAIL",
                "ErrorCode": fault,
                "ErrorInfo": f"error {fault}",
            }
        else:
            answer = self._act(path, body)
        await asyncio.sleep(self.latency / 2)
        if fault == "dropped":
            raise APIConnectionError("reset after the server acted", request_sent=True)
        arrival.answered = True
        return RawResponse(200, json.dumps(answer).encode())

    def _act(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == STREAM:
            key = body.get("MsgKey") or f"key-{len(self.streams) + 1}"
            assert key not in self.finished, "a piece after the stream finished"
            self.streams.setdefault(key, []).append(body["Chunk"])
            if body.get("Finish") == 1:
                self.finished.add(key)
            return {**OK, "MsgKey": key}
        if path == GROUP_SEND:
            if body["Random"] in self.randoms:  # a repeat within 5 minutes is dropped
                seq = next(s for s, t in self.group_texts.items() if t[0] == _text(body))
                return {**OK, "MsgTime": 1669872112, "MsgSeq": seq}
            self.randoms.add(body["Random"])
            seq = len(self.group_texts) + 1
            self.group_texts[seq] = [_text(body)]
            return {**OK, "MsgTime": 1669872112, "MsgSeq": seq}
        assert path == GROUP_MODIFY
        self.group_texts[body["MsgSeq"]].append(_text(body))
        return OK

    async def aclose(self) -> None:
        self.closed = True

    def calls(self, path: str = STREAM) -> list[Arrival]:
        return [a for a in self.arrivals if a.path == path]


def _text(body: dict[str, Any]) -> str:
    (element,) = body["MsgBody"]
    return str(element["MsgContent"]["Text"])


def _chat(server: StreamServer, **options: Any) -> TencentChat:
    options.setdefault("rate_limit", None)
    return TencentChat(
        SDKAPPID, SECRET_KEY, admin=ADMIN, base_url=BASE_URL, transport=server, **options
    )


async def _words(reply: StreamReply, words: list[str], pause: float) -> None:
    for word in words:
        await reply.write(word)
        await asyncio.sleep(pause)


WORDS = [f"w{i} " for i in range(300)]


# -- coalescing and intervals --------------------------------------------------------


def test_the_first_text_goes_at_once_then_one_call_per_interval_carrying_the_rest() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamReply, float]:
        server = StreamServer(latency=0.02)
        async with _chat(server) as chat, chat.stream_reply(ROBOT, USER) as reply:
            first_write = loop.time()
            await _words(reply, WORDS, 0.01)
        return server, reply, first_write

    server, reply, first_write = run_virtual(main)
    calls = server.calls()
    assert calls[0].at == first_write  # time to first text: no wait at all
    assert "MsgKey" not in calls[0].body
    assert all(c.body["MsgKey"] == "key-1" for c in calls[1:])
    assert [c.body.get("Finish") for c in calls] == [None] * (len(calls) - 1) + [1]
    # Each call starts 0.2 s after the previous one's answer: the server sees them at
    # least 0.2 s apart, so never more than 5 in a second.
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.2 + 0.02 - 1e-9
    assert max_in_window([c.at for c in calls]) <= 5
    # 300 words over 3 s go in about 3 / 0.22 calls, not 300.
    assert 12 <= len(calls) <= 16
    assert "".join(server.streams["key-1"]) == "".join(WORDS) == reply.text == reply.delivered
    assert reply.calls == len(calls)
    assert reply.finished
    assert reply.msg_key == "key-1"


def test_two_thousand_writes_at_once_make_a_handful_of_calls() -> None:
    async def main(loop: Any) -> StreamServer:
        server = StreamServer(latency=0.01)
        async with _chat(server) as chat, chat.stream_reply(ROBOT, USER) as reply:
            for i in range(2000):
                await reply.write(f"{i} ")
                if i % 500 == 0:
                    await asyncio.sleep(0)  # the producer yields now and then
        return server

    server = run_virtual(main)
    calls = server.calls()
    assert len(calls) <= 5
    assert "".join(server.streams["key-1"]) == "".join(f"{i} " for i in range(2000))
    assert calls[-1].body["Finish"] == 1


def test_a_group_reply_is_sent_then_replaced_about_once_a_second() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamReply]:
        server = StreamServer(latency=0.02)
        async with (
            _chat(server) as chat,
            chat.stream_group_reply(GROUP, from_account=ROBOT) as reply,
        ):
            await _words(reply, WORDS, 0.01)
        return server, reply

    server, reply = run_virtual(main)
    (send,) = server.calls(GROUP_SEND)
    modifies = server.calls(GROUP_MODIFY)
    assert send.body["From_Account"] == ROBOT
    assert _text(send.body) == "w0 "
    texts = server.group_texts[1]
    assert texts[-1] == "".join(WORDS) == reply.delivered
    # Each version extends the one before: the text only ever grows.
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(texts))
    ats = [send.at] + [m.at for m in modifies]
    assert min(b - a for a, b in itertools.pairwise(ats)) >= 1.0
    assert 3 <= len(modifies) <= 4
    assert reply.msg_seq == 1
    assert reply.msg_key is None
    assert reply.finished


def test_a_reply_with_no_text_makes_no_call() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamReply]:
        server = StreamServer()
        async with _chat(server) as chat, chat.stream_reply(ROBOT, USER) as reply:
            await reply.write("")
        return server, reply

    server, reply = run_virtual(main)
    assert server.arrivals == []
    assert reply.calls == 0
    assert reply.finished


# -- always finished ----------------------------------------------------------------


def test_a_suffix_fits_after_a_reply_written_to_the_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrapper = len('[{"MsgType":"TIMTextElem","MsgContent":{"Text":""}}]')

    async def main(loop: Any) -> StreamServer:
        server = StreamServer()
        async with _chat(server) as chat:
            reply = chat.stream_reply(ROBOT, USER, error_suffix="!")

            async def answer() -> None:
                async with reply:
                    await reply.write("x" * (12288 - wrapper - 1))  # all the room but "!"
                    raise KeyError("the model failed")

            with pytest.raises(KeyError):
                await answer()
        return server

    text = "".join(run_virtual(main).streams["key-1"])
    assert text == "x" * (12288 - 52 - 1) + "!"
    assert "not finished" not in caplog.text  # the stream itself went well


def test_an_exception_in_the_block_finishes_with_the_text_and_suffix_and_is_raised() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamReply]:
        server = StreamServer()
        async with _chat(server) as chat:
            reply = chat.stream_reply(ROBOT, USER, error_suffix=" [interrupted]")

            async def answer() -> None:
                async with reply:
                    await _words(reply, ["partial ", "answer"], 0.05)
                    raise KeyError("the model failed")

            with pytest.raises(KeyError):
                await answer()
        return server, reply

    server, reply = run_virtual(main)
    assert "".join(server.streams["key-1"]) == "partial answer [interrupted]"
    assert "key-1" in server.finished
    assert reply.finished


def test_a_cancelled_block_finishes_its_stream_and_stays_cancelled() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamReply]:
        server = StreamServer(latency=0.05)
        async with _chat(server) as chat:
            reply = chat.stream_reply(ROBOT, USER)

            async def answer() -> None:
                async with reply:
                    await _words(reply, WORDS, 0.01)

            task = asyncio.create_task(answer())
            await asyncio.sleep(0.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert reply.finished  # finished before the cancellation went on
        return server, reply

    server, reply = run_virtual(main)
    assert "key-1" in server.finished
    assert "".join(server.streams["key-1"]) == reply.text == reply.delivered
    assert 0 < len(reply.text) < len("".join(WORDS))


def test_a_block_cancelled_twice_while_finishing_still_finishes() -> None:
    async def main(loop: Any) -> StreamServer:
        server = StreamServer(latency=0.3)
        async with _chat(server) as chat:
            reply = chat.stream_reply(ROBOT, USER)

            async def answer() -> None:
                async with reply:
                    await _words(reply, WORDS, 0.01)

            task = asyncio.create_task(answer())
            await asyncio.sleep(0.5)
            task.cancel()
            await asyncio.sleep(0.1)
            task.cancel()  # again, while the block is finishing
            with pytest.raises(asyncio.CancelledError):
                await task
        return server

    server = run_virtual(main)
    assert "key-1" in server.finished


def test_closing_the_client_finishes_open_streams_first() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamReply, list[BaseException]]:
        server = StreamServer()
        chat = _chat(server)
        reply = chat.stream_reply(ROBOT, USER)
        errors: list[BaseException] = []

        async def answer() -> None:
            try:
                async with reply:
                    await _words(reply, WORDS, 0.01)
            except TencentChatError as error:
                errors.append(error)

        task = asyncio.create_task(answer())
        await asyncio.sleep(0.5)
        await chat.aclose()
        await task
        return server, reply, errors

    server, reply, errors = run_virtual(main)
    assert "key-1" in server.finished
    last = server.calls()[-1]
    assert last.body["Finish"] == 1
    assert last.answered
    (error,) = errors
    assert isinstance(error, StreamClosedError)
    assert "client was closed" in str(error)
    # The write was refused as the closing began; the rest was then delivered.
    assert reply.delivered == reply.text == "".join(server.streams["key-1"])
    assert reply.delivered.startswith(error.delivered)
    assert error.text == reply.text


def test_writing_after_the_end_raises() -> None:
    async def main(loop: Any) -> None:
        async with _chat(StreamServer()) as chat:
            async with chat.stream_reply(ROBOT, USER) as reply:
                await reply.write("done")
            with pytest.raises(StreamClosedError) as raised:
                await reply.write("more")
            assert raised.value.delivered == "done"
            await reply.finish()  # idempotent

    run_virtual(main)


def test_an_idle_stream_is_finished_and_a_later_write_raises() -> None:
    async def main(loop: Any) -> tuple[StreamServer, float]:
        server = StreamServer()
        async with _chat(server) as chat:
            reply = chat.stream_reply(ROBOT, USER, idle_timeout=10.0)
            started: list[float] = []

            async def answer() -> None:
                async with reply:
                    await reply.write("thinking")
                    started.append(loop.time())
                    await asyncio.sleep(12)
                    await reply.write("too late")

            with pytest.raises(StreamClosedError, match=r"10\.0 s without text"):
                await answer()
        return server, started[0]

    server, started = run_virtual(main)
    first, finish = server.calls()
    # The first call kept its last character back, for the call that finishes.
    assert (first.body["Chunk"], finish.body["Chunk"], finish.body["Finish"]) == ("thinkin", "g", 1)
    assert 10.0 <= finish.at - started < 10.1  # before the newer API's 15 s


def test_idle_timeout_none_keeps_a_stream_open() -> None:
    async def main(loop: Any) -> StreamServer:
        server = StreamServer()
        async with (
            _chat(server) as chat,
            chat.stream_reply(ROBOT, USER, idle_timeout=None) as reply,
        ):
            await reply.write("a")
            await asyncio.sleep(60)
            await reply.write("b")
        return server

    server = run_virtual(main)
    assert server.streams["key-1"] == ["a", "b"]
    assert "key-1" in server.finished


# -- failures: retried in order, never repeated ---------------------------------------


def test_an_internal_error_is_retried_after_the_interval_with_the_text_since() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamReply]:
        server = StreamServer(faults={2: 10002, 3: 10002})
        async with _chat(server) as chat, chat.stream_reply(ROBOT, USER) as reply:
            await _words(reply, WORDS[:100], 0.01)
        return server, reply

    server, reply = run_virtual(main)
    calls = server.calls()
    assert "".join(server.streams["key-1"]) == "".join(WORDS[:100]) == reply.delivered
    # The retries also waited the interval: the server never saw 6 in a second.
    assert max_in_window([c.at for c in calls]) <= 5
    assert min(b.at - a.at for a, b in itertools.pairwise(calls)) >= 0.2
    assert reply.calls == len(calls)


def test_a_piece_whose_answer_was_lost_is_not_sent_again() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamInterruptedError]:
        server = StreamServer(faults={2: "dropped"})
        async with _chat(server) as chat:
            with pytest.raises(StreamInterruptedError) as raised:
                async with chat.stream_reply(ROBOT, USER) as reply:
                    await _words(reply, WORDS[:100], 0.01)
        return server, raised.value

    server, error = run_virtual(main)
    calls = server.calls()
    # The finishing piece too waited the interval after the lost answer: the server
    # counts it as one of the stream's calls.
    assert min(b.at - a.at for a, b in itertools.pairwise(calls)) >= 0.2
    pieces = server.streams["key-1"]
    # The dropped piece reached the server once; the stream was then ended with an
    # empty last piece, which repeats nothing.
    assert pieces[-1] == ""
    assert "key-1" in server.finished
    shown = "".join(pieces)
    assert len(set(pieces[:-1])) == len(pieces) - 1
    assert "".join(WORDS[:100]).startswith(shown)
    assert isinstance(error.error, APIConnectionError)
    assert error.__cause__ is error.error
    assert shown.startswith(error.delivered)
    assert len(error.delivered) < len(shown)
    assert error.text.startswith(shown)


def test_a_first_piece_whose_answer_was_lost_is_not_sent_again() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamInterruptedError, StreamReply]:
        server = StreamServer(faults={0: "dropped"})
        async with _chat(server) as chat:
            reply = chat.stream_reply(ROBOT, USER)

            async def answer() -> None:
                async with reply:
                    await reply.write("hello")
                    await asyncio.sleep(1)
                    await reply.write(" world")

            with pytest.raises(StreamInterruptedError) as raised:
                await answer()
        return server, raised.value, reply

    server, error, reply = run_virtual(main)
    assert len(server.arrivals) == 1  # not resent: it may have shown, and would twice
    assert error.delivered == ""
    assert reply.msg_key is None
    assert not reply.finished


def test_a_refused_connection_is_retried_it_never_reached_the_server() -> None:
    async def main(loop: Any) -> StreamServer:
        server = StreamServer(faults={0: "refused", 3: "refused"})
        async with _chat(server) as chat, chat.stream_reply(ROBOT, USER) as reply:
            await _words(reply, WORDS[:60], 0.01)
        return server

    server = run_virtual(main)
    assert "".join(server.streams["key-1"]) == "".join(WORDS[:60])


def test_a_rejected_piece_ends_the_stream_with_the_delivered_text() -> None:
    async def main(loop: Any) -> StreamInterruptedError:
        server = StreamServer(faults={1: 10004})
        async with _chat(server) as chat:
            with pytest.raises(StreamInterruptedError) as raised:
                async with chat.stream_reply(ROBOT, USER) as reply:
                    await _words(reply, WORDS[:100], 0.01)
        return raised.value

    error = run_virtual(main)
    assert error.delivered == "w0"  # the space kept back for the next call
    assert error.text.startswith("w0 w1 ")
    assert isinstance(error, StreamError)
    assert isinstance(error, TencentChatError)


def test_a_groups_first_message_is_retried_as_the_same_request() -> None:
    async def main(loop: Any) -> StreamServer:
        server = StreamServer(faults={0: "dropped"})
        async with (
            _chat(server) as chat,
            chat.stream_group_reply(GROUP, from_account=ROBOT) as reply,
        ):
            await _words(reply, WORDS[:100], 0.01)
        return server

    server = run_virtual(main)
    first, again = server.calls(GROUP_SEND)
    assert first.body == again.body  # the same Random: the server drops the repeat
    assert list(server.group_texts) == [1]
    assert server.group_texts[1][-1] == "".join(WORDS[:100])


def test_a_groups_lost_modification_is_sent_again_with_the_latest_text() -> None:
    async def main(loop: Any) -> StreamServer:
        server = StreamServer(faults={2: "dropped"})
        async with (
            _chat(server) as chat,
            chat.stream_group_reply(GROUP, from_account=ROBOT) as reply,
        ):
            await _words(reply, WORDS[:300], 0.01)
        return server

    server = run_virtual(main)
    texts = server.group_texts[1]
    assert texts[-1] == "".join(WORDS)
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))


# -- input checked before anything is sent -------------------------------------------


@pytest.mark.parametrize(
    ("robot", "user"), [("", USER), (ROBOT, ""), (None, USER), (ROBOT, "\ud800")]
)
def test_a_stream_with_bad_accounts_is_refused_when_made(robot: Any, user: Any) -> None:
    async def main(loop: Any) -> StreamServer:
        server = StreamServer()
        async with _chat(server) as chat:
            with pytest.raises(ValidationError):
                chat.stream_reply(robot, user)
        return server

    assert run_virtual(main).arrivals == []


@pytest.mark.parametrize(
    "options",
    [
        {"min_interval": -1},
        {"min_interval": float("nan")},
        {"idle_timeout": 0},
        {"error_suffix": 1},
    ],
)
def test_bad_stream_settings_are_refused(options: dict[str, Any]) -> None:
    async def main(loop: Any) -> None:
        async with _chat(StreamServer()) as chat:
            with pytest.raises(ValidationError):
                chat.stream_reply(ROBOT, USER, **options)

    run_virtual(main)


@pytest.mark.parametrize("bad", [b"bytes", 1, None, "\udc80"])
def test_a_write_of_no_text_is_refused_and_keeps_nothing(bad: Any) -> None:
    async def main(loop: Any) -> StreamServer:
        server = StreamServer()
        async with _chat(server) as chat, chat.stream_reply(ROBOT, USER) as reply:
            await reply.write("ok")
            with pytest.raises(ValidationError):
                await reply.write(bad)
        return server

    assert "".join(run_virtual(main).streams["key-1"]) == "ok"


def test_a_reply_past_12_kb_is_refused_at_the_write_that_would_pass_it() -> None:
    # 12,288 bytes of the text message's JSON: 52 of them wrap the text.
    wrapper = len('[{"MsgType":"TIMTextElem","MsgContent":{"Text":""}}]')

    async def main(loop: Any) -> StreamServer:
        server = StreamServer()
        async with _chat(server) as chat, chat.stream_reply(ROBOT, USER) as reply:
            await reply.write("é" * ((12288 - wrapper - 2) // 2))  # 2 bytes each
            await reply.write("<")  # one byte: the limit less one
            with pytest.raises(ValidationError, match="12 KB"):
                await reply.write('"')  # escaped: two bytes
            await reply.write(">")  # exactly at the limit
            with pytest.raises(ValidationError):
                await reply.write("x")
        return server

    text = "".join(run_virtual(main).streams["key-1"])
    assert (
        len(
            json.dumps(
                [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}],
                ensure_ascii=False,
                separators=(",", ":"),
            ).encode()
        )
        == 12288
    )


def test_a_stream_on_a_closed_client_is_refused() -> None:
    async def main(loop: Any) -> None:
        chat = _chat(StreamServer())
        await chat.aclose()
        with pytest.raises(ClientClosedError):
            async with chat.stream_reply(ROBOT, USER):
                pass

    run_virtual(main)


# -- sharing the API's budget ---------------------------------------------------------


def test_many_streams_share_the_apis_rate_and_first_texts_go_first() -> None:
    # 80 streams starting within half a second, each wanting about 4.5 calls a second
    # for 2 s: about 360 a second together, against the API's pace of 190.
    async def main(loop: Any) -> tuple[StreamServer, dict[str, float], list[StreamReply]]:
        server = StreamServer(latency=0.02)
        written: dict[str, float] = {}  # each user's stream: when its first text was written
        replies: list[StreamReply] = []
        async with _chat(server, limiter=RateLimiter(190)) as chat:

            async def one(i: int) -> None:
                await asyncio.sleep(i / 160)
                async with chat.stream_reply(ROBOT, f"user{i}") as reply:
                    replies.append(reply)
                    written[f"user{i}"] = loop.time()
                    await reply.write("first ")
                    for k in range(60):
                        await reply.write(f"word{k} ")
                        await asyncio.sleep(0.01 + (k * 7 + i) % 50 / 1000)

            await asyncio.gather(*(one(i) for i in range(80)))
        return server, written, replies

    server, written, replies = run_virtual(main)
    firsts = {c.body["To_Account"]: c.at for c in reversed(server.calls())}
    waits = [firsts[user] - at for user, at in written.items()]
    starts = [c.at for c in server.calls()]
    assert max_in_window(starts) >= 180  # the API's pace was the bound: streams competed
    assert max_in_window(starts) <= 190
    assert max(waits) <= 0.1  # each stream's first call went before others' updates
    for reply in replies:
        assert reply.finished
        assert reply.delivered == reply.text
        assert "".join(server.streams[reply.msg_key or ""]) == reply.text


# -- the low-level call ---------------------------------------------------------------


def test_send_stream_chunk_sends_the_documented_fields_and_returns_the_key() -> None:
    async def main(loop: Any) -> StreamServer:
        server = StreamServer()
        async with _chat(server) as chat:
            key = await chat.send_stream_chunk(ROBOT, USER, "hello, ")
            assert key == "key-1"
            assert await chat.send_stream_chunk(ROBOT, USER, "world", msg_key=key) == key
            await chat.send_stream_chunk(ROBOT, USER, "", msg_key=key, finish=True)
        return server

    server = run_virtual(main)
    assert [c.body for c in server.calls()] == [
        {"From_Account": ROBOT, "To_Account": USER, "Chunk": "hello, "},
        {"From_Account": ROBOT, "To_Account": USER, "Chunk": "world", "MsgKey": "key-1"},
        {"From_Account": ROBOT, "To_Account": USER, "Chunk": "", "MsgKey": "key-1", "Finish": 1},
    ]


def test_send_stream_chunk_retries_an_internal_error_but_not_a_lost_answer() -> None:
    async def main(loop: Any) -> tuple[StreamServer, BaseException]:
        server = StreamServer(faults={0: 10002, 2: "dropped"})
        async with _chat(server) as chat:
            key = await chat.send_stream_chunk(ROBOT, USER, "a")  # retried after 10002
            with pytest.raises(APIConnectionError) as raised:
                await chat.send_stream_chunk(ROBOT, USER, "b", msg_key=key)
        return server, raised.value

    server, error = run_virtual(main)
    assert len(server.arrivals) == 3
    assert server.streams["key-1"] == ["a", "b"]
    assert isinstance(error, APIConnectionError)
    assert error.request_sent


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ((ROBOT, USER, ""), "empty"),
        ((ROBOT, USER, 5), "string"),
        (("", USER, "x"), "empty"),
        ((ROBOT, USER, "x" * 12237), "12 KB"),
    ],
)
def test_bad_chunks_are_refused_before_sending(arguments: tuple[Any, ...], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Call.send_stream_chunk(*arguments)


@pytest.mark.parametrize(
    ("arguments", "options", "message"),
    [
        ((ROBOT, USER, ""), {}, "chunk must not be empty, except on the call that finishes"),
        ((ROBOT, USER, 5), {}, "chunk must be a string, not int"),
        ((ROBOT, USER, "x"), {"finish": 2}, "finish must be True or False, got 2"),
        (
            (ROBOT, USER, "x" * 12237),
            {},
            "the chunk is 12289 bytes as a text message; at most 12288 (12 KB) are sent",
        ),
    ],
)
def test_a_bad_chunk_says_exactly_what_is_wrong(
    arguments: tuple[Any, ...], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        Call.send_stream_chunk(*arguments, **options)
    assert str(raised.value) == message


def test_an_empty_chunk_may_finish_and_the_largest_chunk_passes() -> None:
    assert Call.send_stream_chunk(ROBOT, USER, "", msg_key="k", finish=True).body
    assert Call.send_stream_chunk(ROBOT, USER, "x" * 12236).body  # 12,288 with the wrapper


def test_a_stream_error_is_a_tencent_chat_error_with_the_texts() -> None:
    cause = InternalServerError(10002, "boom", endpoint="x")
    error = StreamInterruptedError("gone", error=cause, text="ab", delivered="a")
    assert isinstance(error, StreamError)
    assert isinstance(error, TencentChatError)
    assert (error.text, error.delivered, error.error) == ("ab", "a", cause)


# -- found by review: the last piece, overload, suffixes, closing, cancel scopes --------


def test_an_update_keeps_its_last_character_back_so_the_last_piece_has_text() -> None:
    # Chunk is a required string; whether an empty one is taken is not documented.
    async def main(loop: Any) -> StreamServer:
        server = StreamServer()
        async with _chat(server) as chat:
            async with chat.stream_reply(ROBOT, USER) as reply:
                await reply.write("OK")
            async with chat.stream_reply(ROBOT, "user2") as reply:
                await _words(reply, WORDS[:50], 0.01)
                await asyncio.sleep(1)  # everything written was sent, but one character
        return server

    server = run_virtual(main)
    canned, long = (
        [
            (c.body["Chunk"], c.body.get("Finish"))
            for c in server.calls()
            if c.body["To_Account"] == u
        ]
        for u in (USER, "user2")
    )
    assert canned == [("OK", 1)]  # one call: the block ended before it went
    assert long[-1] == (" ", 1)
    assert "".join(chunk for chunk, _ in long) == "".join(WORDS[:50])


def test_a_group_reply_shown_whole_before_the_end_is_finished_without_a_call() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamReply]:
        server = StreamServer()
        async with (
            _chat(server) as chat,
            chat.stream_group_reply(GROUP, from_account=ROBOT) as reply,
        ):
            await reply.write("hello")
            await asyncio.sleep(1.5)
            await reply.write(" world")
            await asyncio.sleep(3)  # the modification went: all of it is shown
        return server, reply

    server, reply = run_virtual(main)
    assert server.group_texts[1] == ["hello", "hello world"]
    assert reply.finished
    assert reply.error is None


def test_under_overload_closing_finishes_every_stream_in_time() -> None:
    # 600 streams wanting 5 calls a second each, against the API's 190: the updates
    # queue; closing must not leave a stream behind its own queued update (600 finishing
    # calls take 3.2 s at 190 a second, after at most 1 s for a queued update to give
    # up; behind 600 updates, 6.3 s).
    async def main(loop: Any) -> tuple[StreamServer, list[StreamReply], float]:
        server = StreamServer(latency=0.02)
        chat = _chat(server, limiter=RateLimiter(190))
        replies = [chat.stream_reply(ROBOT, f"user{i}") for i in range(600)]

        async def one(reply: StreamReply) -> None:
            with contextlib.suppress(StreamClosedError):
                async with reply:
                    while True:
                        await reply.write("word ")
                        await asyncio.sleep(0.05)

        tasks = [asyncio.create_task(one(r)) for r in replies]
        await asyncio.sleep(3)
        started = loop.time()
        await chat.aclose(timeout=5)
        took = loop.time() - started
        await asyncio.gather(*tasks)
        return server, replies, took

    server, replies, took = run_virtual(main)
    assert took <= 5
    assert all(r.finished for r in replies)
    assert len(server.finished) == 600
    assert max_in_window([c.at for c in server.calls()]) <= 190
    calls_to: dict[str, int] = {}
    for call in server.calls():
        calls_to[call.body["To_Account"]] = calls_to.get(call.body["To_Account"], 0) + 1
    for i, reply in enumerate(replies):
        assert "".join(server.streams[reply.msg_key or ""]) == reply.text
        assert reply.calls == calls_to[f"user{i}"]  # an update left unsent is no call


def test_an_ending_stream_goes_before_other_streams_updates() -> None:
    # 300 streams go on writing, saturating the API, while 300 others end: their last
    # calls wait in the interactive class, not behind the updates.
    async def main(loop: Any) -> tuple[StreamServer, dict[str, float]]:
        server = StreamServer(latency=0.02)
        ended: dict[str, float] = {}
        async with _chat(server, limiter=RateLimiter(190)) as chat:

            async def one(i: int) -> None:
                user = f"user{i}"
                with contextlib.suppress(StreamClosedError):
                    async with chat.stream_reply(ROBOT, user) as reply:
                        # The clock starts at 1000; the busy ones go on 3 s longer.
                        while loop.time() < (1006 if i % 2 else 1003):
                            await reply.write("word ")
                            await asyncio.sleep(0.05)
                        if i % 2 == 0:
                            ended[user] = loop.time()

            await asyncio.gather(*(one(i) for i in range(600)))
        return server, ended

    server, ended = run_virtual(main)
    finishes = {c.body["To_Account"]: c.at for c in server.calls() if c.body.get("Finish")}
    waits = [finishes[user] - at for user, at in ended.items()]
    assert len(waits) == 300
    assert max(waits) <= 300 / 190 + 0.5


@pytest.mark.parametrize("min_interval", [0, 0.1, 0.199])
def test_a_one_to_one_stream_is_not_paced_above_5_calls_a_second(min_interval: float) -> None:
    async def main(loop: Any) -> None:
        async with _chat(StreamServer()) as chat:
            with pytest.raises(ValidationError, match="min_interval"):
                chat.stream_reply(ROBOT, USER, min_interval=min_interval)
            assert chat.stream_group_reply(GROUP, from_account=ROBOT, min_interval=min_interval)

    run_virtual(main)


def test_before_its_first_text_a_stream_waits_as_long_as_the_model_takes() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamReply]:
        server = StreamServer()
        async with _chat(server) as chat, chat.stream_reply(ROBOT, USER) as reply:
            await asyncio.sleep(60)  # a model thinking for a minute
            await reply.write("at last")
        return server, reply

    server, reply = run_virtual(main)
    assert "".join(server.streams["key-1"]) == "at last"
    assert reply.finished


def test_an_interrupted_stream_ends_with_the_suffix_and_its_room_was_kept() -> None:
    wrapper = len('[{"MsgType":"TIMTextElem","MsgContent":{"Text":""}}]')

    async def main(loop: Any) -> tuple[StreamServer, StreamInterruptedError]:
        server = StreamServer(faults={2: "dropped"})
        async with _chat(server) as chat:
            reply = chat.stream_reply(ROBOT, USER, error_suffix=" [cut]")
            room = (
                r"^the reply would be 12289 bytes as a text message \(room kept for error_suffix\)"
            )
            with pytest.raises(ValidationError, match=room):
                await reply.write("x" * (12288 - wrapper - 5))  # fits, but not with " [cut]"

            async def answer() -> None:
                async with reply:
                    await _words(reply, WORDS[:100], 0.01)

            with pytest.raises(StreamInterruptedError) as raised:
                await answer()
        return server, raised.value

    server, error = run_virtual(main)
    assert not error.text.endswith(" [cut]")  # the block's exit added no suffix to it
    assert server.streams["key-1"][-1] == " [cut]"
    assert "key-1" in server.finished
    assert not error.delivered.endswith(" [cut]")


@pytest.mark.parametrize(
    ("suffix", "problem"),
    [(b"x", "str"), ("\ud800", "Unicode"), ("x" * 12237, "12 KB")],
)
def test_an_unusable_error_suffix_is_refused_when_the_stream_is_made(
    suffix: Any, problem: str
) -> None:
    async def main(loop: Any) -> None:
        async with _chat(StreamServer()) as chat:
            with pytest.raises(ValidationError, match=problem):
                chat.stream_reply(ROBOT, USER, error_suffix=suffix)

    run_virtual(main)


def test_closing_finishes_a_stream_still_waiting_for_its_first_text() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamClosedError]:
        server = StreamServer()
        chat = _chat(server)
        reply = chat.stream_reply(ROBOT, USER)
        await reply.__aenter__()  # the model has not answered yet
        assert reply in chat._streams.streams
        await chat.aclose()
        with pytest.raises(StreamClosedError) as raised:
            await reply.write("too late")
        await reply.__aexit__(None, None, None)
        return server, raised.value

    server, error = run_virtual(main)
    assert server.arrivals == []
    assert "client was closed" in str(error)


def test_a_stream_error_handled_in_the_block_is_not_raised_again_nor_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main(loop: Any) -> int:
        server = StreamServer(faults={1: 10004})
        caught = 0
        async with _chat(server) as chat, chat.stream_reply(ROBOT, USER) as reply:
            for word in WORDS[:50]:
                try:
                    await reply.write(word)
                except StreamInterruptedError:
                    caught += 1
                    break
                await asyncio.sleep(0.01)
        return caught

    assert run_virtual(main) == 1
    assert "not finished" not in caplog.text


def test_a_block_cancelled_by_an_anyio_scope_finishes_without_spinning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shields = 0
    shield = asyncio.shield

    def counted(awaitable: Any) -> Any:
        nonlocal shields
        shields += 1
        if shields > 1000:  # spinning: fail rather than hang the virtual clock
            raise AssertionError("finishing spins on an anyio scope's cancellations")
        return shield(awaitable)

    async def main(loop: Any) -> StreamReply:
        server = StreamServer(latency=0.5)
        async with _chat(server) as chat:
            reply = chat.stream_reply(ROBOT, USER)
            with anyio.move_on_after(0.3):
                async with reply:
                    await reply.write("hello world")
                    await asyncio.sleep(5)
            return reply

    monkeypatch.setattr(asyncio, "shield", counted)
    reply = run_virtual(main)
    assert reply.finished
    assert reply.delivered == "hello world"
    assert shields < 10  # an anyio scope cancels every await again: a loop would spin


# -- what each end says, and what is logged ---------------------------------------------


def test_a_first_call_failing_is_retried_by_the_stream_each_retry_a_call() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamReply]:
        server = StreamServer(faults={0: 10002})
        async with _chat(server) as chat, chat.stream_reply(ROBOT, USER) as reply:
            await _words(reply, WORDS[:20], 0.01)
        return server, reply

    server, reply = run_virtual(main)
    calls = server.calls()
    assert reply.calls == len(calls)  # each attempt a call of the stream's own
    assert calls[1].at - calls[0].at >= 0.2  # the stream's retry waited its interval
    assert "".join(server.streams["key-1"]) == "".join(WORDS[:20])


def test_a_stream_gives_up_after_the_clients_retries() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamInterruptedError]:
        server = StreamServer(faults=dict.fromkeys(range(1, 50), 10002))
        async with _chat(server, max_retries=2) as chat:

            async def answer() -> None:
                async with chat.stream_reply(ROBOT, USER) as reply:
                    await _words(reply, WORDS[:100], 0.01)

            with pytest.raises(StreamInterruptedError) as raised:
                await answer()
        return server, raised.value

    server, error = run_virtual(main)
    assert isinstance(error.error, InternalServerError)
    # The first call, an update tried three times (two retries), the finishing piece.
    assert len(server.calls()) == 1 + 3 + 1


@pytest.mark.parametrize(
    ("end", "message"),
    [
        ("finish", "the stream was finished"),
        ("error", "the stream was finished when its block raised"),
        ("cancelled", "the stream was finished when its block was cancelled"),
    ],
)
def test_a_write_after_the_end_says_how_it_ended(end: str, message: str) -> None:
    async def main(loop: Any) -> StreamClosedError:
        async with _chat(StreamServer()) as chat:
            reply = chat.stream_reply(ROBOT, USER)

            async def answer() -> None:
                async with reply:
                    await reply.write("a")
                    if end == "error":
                        raise KeyError(end)
                    if end == "cancelled":
                        raise asyncio.CancelledError

            with contextlib.suppress(KeyError, asyncio.CancelledError):
                await asyncio.create_task(answer())
            with pytest.raises(StreamClosedError) as raised:
                await reply.write("b")
            return raised.value

    error = run_virtual(main)
    assert str(error) == message
    assert (error.text, error.delivered) == ("a", "a")


@pytest.mark.parametrize(
    ("bad", "problem"), [(b"x", "takes str, not bytes"), ("\udc80", "Unicode")]
)
def test_a_bad_write_says_what_is_wrong(bad: Any, problem: str) -> None:
    async def main(loop: Any) -> None:
        async with _chat(StreamServer()) as chat, chat.stream_reply(ROBOT, USER) as reply:
            with pytest.raises(ValidationError, match=problem):
                await reply.write(bad)

    run_virtual(main)


def test_a_stream_says_where_it_goes_and_how_far_it_got() -> None:
    async def main(loop: Any) -> tuple[str, str]:
        async with _chat(StreamServer()) as chat:
            async with chat.stream_reply(ROBOT, USER) as reply:
                await reply.write("hello")
            group = chat.stream_group_reply(GROUP, from_account=ROBOT)
            assert not chat._streams.streams  # every ended stream has left the client's registry
            return repr(reply), repr(group)

    one, group = run_virtual(main)
    assert one == "<StreamReply user='user1' written=5 delivered=5 calls=1 finished=True>"
    assert group.startswith("<StreamReply group_id='@GRP#1' written=0")


def test_a_closed_client_refuses_a_new_stream_saying_so() -> None:
    async def main(loop: Any) -> None:
        chat = _chat(StreamServer())
        await chat.aclose()
        with pytest.raises(ClientClosedError, match=r"^the client is closed: no stream can start$"):
            await chat.stream_reply(ROBOT, USER).__aenter__()

    run_virtual(main)


def test_a_failure_beside_the_blocks_own_exception_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main(loop: Any) -> None:
        server = StreamServer(faults={0: 10004})
        async with _chat(server) as chat:
            reply = chat.stream_reply(ROBOT, USER)

            async def answer() -> None:
                async with reply:
                    await reply.write("a")
                    await asyncio.sleep(1)  # the first call is refused meanwhile
                    raise KeyError("the model failed")

            with pytest.raises(KeyError):
                await answer()

    run_virtual(main)
    (record,) = [r for r in caplog.records if "not finished" in r.getMessage()]
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith(
        "a streamed reply was not finished: the stream could not go on: InvalidParameterError"
    )


def test_an_interrupted_streams_error_and_logs_say_why(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="tencent_chat_robots")

    async def main(loop: Any) -> tuple[StreamInterruptedError, StreamReply, int]:
        server = StreamServer(faults={1: 10004, 2: 10004})  # the piece, then its end
        async with _chat(server) as chat:
            reply = chat.stream_reply(ROBOT, USER)
            writes_after = 0

            async def answer() -> None:
                nonlocal writes_after
                async with reply:
                    for word in WORDS[:100]:
                        await reply.write(word)
                        if reply.error is not None:
                            writes_after += 1
                        await asyncio.sleep(0.01)

            with pytest.raises(StreamInterruptedError) as raised:
                await answer()
        return raised.value, reply, writes_after

    error, reply, writes_after = run_virtual(main)
    assert writes_after == 0  # the first write after the failure raised it
    assert str(error).startswith("the stream could not go on: InvalidParameterError: error 10004")
    assert "could not end the interrupted stream: InvalidParameterError" in [
        r.getMessage() for r in caplog.records
    ]
    assert not reply.text.endswith("[cut]")


def test_an_idle_finish_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="tencent_chat_robots")

    async def main(loop: Any) -> None:
        async with _chat(StreamServer()) as chat, chat.stream_reply(ROBOT, USER) as reply:
            await reply.write("a")
            await asyncio.sleep(11)

    run_virtual(main)
    assert [r.getMessage() for r in caplog.records] == ["finishing a stream idle for 10 s"]


def test_a_bug_in_the_sender_ends_the_stream_and_is_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("a bug")

    async def main(loop: Any) -> StreamInterruptedError:
        async with _chat(StreamServer()) as chat:
            reply = chat.stream_reply(ROBOT, USER)
            monkeypatch.setattr(type(reply._wire), "next_call", broken)
            await reply.__aenter__()
            await reply.write("a")
            with pytest.raises(StreamInterruptedError) as raised:
                await reply.__aexit__(None, None, None)
            return raised.value

    error = run_virtual(main)
    assert error.error is None
    assert str(error) == "the stream could not go on: its calls were cut short before it finished"
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "a streamed reply's sender failed"
    ]


def test_a_cancelled_block_waits_at_most_2_s_for_a_hung_server() -> None:
    async def main(loop: Any) -> tuple[float, StreamReply]:
        server = StreamServer(latency=60)
        async with _chat(server, timeout=120) as chat:
            reply = chat.stream_reply(ROBOT, USER)

            async def answer() -> None:
                async with reply:
                    await reply.write("a")
                    await asyncio.sleep(1)

            task = asyncio.create_task(answer())
            await asyncio.sleep(0.5)
            task.cancel()
            started = loop.time()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert reply._task is not None
            assert reply._task.done()  # its sender was cut short, not left running
            return loop.time() - started, reply

    took, reply = run_virtual(main)
    assert 1.9 <= took <= 2.1
    assert reply.error is not None
    assert not reply.finished


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"min_interval": 1e9}, "min_interval"),
        ({"idle_timeout": 1e9}, "idle_timeout"),
        ({"error_suffix": b"x"}, "error_suffix"),
    ],
)
def test_out_of_range_settings_are_named(options: dict[str, Any], problem: str) -> None:
    async def main(loop: Any) -> None:
        async with _chat(StreamServer()) as chat:
            with pytest.raises(ValidationError, match=problem):
                chat.stream_reply(ROBOT, USER, **options)
            assert chat.stream_reply(ROBOT, USER, idle_timeout=0.5)

    run_virtual(main)


@pytest.mark.parametrize(("group", "robot"), [("", ROBOT), (GROUP, ""), (None, ROBOT), (GROUP, 5)])
def test_a_group_stream_with_bad_ids_is_refused_when_made(group: Any, robot: Any) -> None:
    async def main(loop: Any) -> None:
        async with _chat(StreamServer()) as chat:
            with pytest.raises(ValidationError):
                chat.stream_group_reply(group, from_account=robot)

    run_virtual(main)


def test_updates_of_one_character_each_keep_the_last_back() -> None:
    async def main(loop: Any) -> StreamServer:
        server = StreamServer()
        async with _chat(server) as chat, chat.stream_reply(ROBOT, USER) as reply:
            for letter in "abc":
                await reply.write(letter)
                await asyncio.sleep(0.5)
        return server

    assert run_virtual(main).streams["key-1"] == ["a", "b", "c"]


def test_a_write_to_a_stream_of_a_closed_client_says_so() -> None:
    async def main(loop: Any) -> StreamServer:
        server = StreamServer()
        chat = _chat(server)
        reply = chat.stream_reply(ROBOT, USER)  # never entered
        await chat.aclose()
        with pytest.raises(StreamClosedError, match=r"^the client was closed, which finished"):
            await reply.write("late")
        return server

    assert run_virtual(main).arrivals == []


def test_finish_raises_a_failure_once() -> None:
    async def main(loop: Any) -> None:
        server = StreamServer(faults={0: 10004})
        async with _chat(server) as chat:
            reply = chat.stream_reply(ROBOT, USER)
            await reply.write("a")
            with pytest.raises(StreamInterruptedError):
                await reply.finish()
            await reply.finish()  # said once: not again

    run_virtual(main)


# -- found by the second review: closing, empty writes, starvation, counting -----------


@pytest.mark.parametrize("how", ["anyio", "wait_for"])
def test_a_cancelled_aclose_still_closes_the_client_without_spinning(how: str) -> None:
    async def main(loop: Any) -> tuple[TencentChat, float, bool]:
        server = StreamServer(latency=0.6)
        chat = _chat(server)
        reply = chat.stream_reply(ROBOT, USER)
        await reply.__aenter__()
        await reply.write("hello")
        await asyncio.sleep(1)  # the first piece went
        started = loop.time()
        if how == "anyio":
            with anyio.move_on_after(0.05):
                await chat.aclose()
        else:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(chat.aclose(), 0.05)
        return chat, loop.time() - started, reply.finished

    chat, took, finished = run_virtual(main)
    assert chat.closed  # a cancelled close still closes
    assert finished  # and the open stream was finished first
    assert took < 2  # the virtual clock moved: nothing spun


def test_no_stream_starts_while_the_client_is_closing() -> None:
    async def main(loop: Any) -> StreamServer:
        server = StreamServer(latency=0.5)
        chat = _chat(server)
        first = chat.stream_reply(ROBOT, USER)
        await first.__aenter__()
        await first.write("hello")
        await asyncio.sleep(1)
        closing = asyncio.create_task(chat.aclose())
        await asyncio.sleep(0.1)  # the close is finishing the open stream
        with pytest.raises(ClientClosedError):
            await chat.stream_reply(ROBOT, "user2").__aenter__()
        late = chat.stream_reply(ROBOT, "user3")  # never entered
        with pytest.raises(StreamClosedError):
            await late.write("late")
        await closing
        return server

    server = run_virtual(main)
    assert {c.body["To_Account"] for c in server.calls()} == {USER}
    assert server.finished == {"key-1"}


def test_empty_writes_do_not_keep_a_stream_alive() -> None:
    # A reasoning model's deltas may be empty while it thinks: the server counts only
    # calls, so the idle time runs from the last call it accepted.
    async def main(loop: Any) -> tuple[StreamServer, float, float]:
        server = StreamServer()
        async with _chat(server) as chat:
            reply = chat.stream_reply(ROBOT, USER)

            async def answer() -> None:
                async with reply:
                    await reply.write("Let me think")
                    for _ in range(20):
                        await asyncio.sleep(1)
                        await reply.write("")

            with pytest.raises(StreamClosedError, match="without text"):
                await answer()
        first, last = server.calls()[0], server.calls()[-1]
        return server, first.at, last.at

    server, first, last = run_virtual(main)
    assert "key-1" in server.finished
    assert "".join(server.streams["key-1"]) == "Let me think"
    assert last - first <= 10.1  # finished 10 s after the last accepted call, not later


def test_a_stream_starved_of_permits_still_updates_before_the_server_ends_it() -> None:
    # New streams' first and last calls (interactive, 16 a second) take every permit of
    # an API paced at 10: a long stream's updates, in the bulk class, would wait forever.
    async def main(loop: Any) -> tuple[StreamServer, StreamReply]:
        server = StreamServer()
        async with _chat(server, limiter=RateLimiter(10)) as chat:

            async def short(i: int) -> None:
                async with chat.stream_reply(ROBOT, f"short{i}") as reply:
                    await reply.write("o")  # a first call, and later a last: interactive
                    await asyncio.sleep(0.3)
                    await reply.write("k")

            async def shorts() -> None:
                started = []
                for i in range(200):  # 8 new streams a second for 25 s
                    started.append(asyncio.create_task(short(i)))
                    await asyncio.sleep(0.125)
                await asyncio.gather(*started)

            background = asyncio.create_task(shorts())
            async with chat.stream_reply(ROBOT, USER) as reply:
                for _ in range(200):  # a word every 0.1 s for 20 s
                    await reply.write("word ")
                    await asyncio.sleep(0.1)
            await background
        return server, reply

    server, reply = run_virtual(main)
    arrivals = [c.at for c in server.calls() if c.body["To_Account"] == USER]
    assert max(b - a for a, b in itertools.pairwise(arrivals)) < 15  # never left to expire
    assert reply.finished
    assert "".join(server.streams[reply.msg_key or ""]) == reply.text


def test_calls_counts_what_left_the_client_the_last_piece_of_an_interrupted_one_too() -> None:
    async def main(loop: Any) -> tuple[StreamServer, StreamReply]:
        server = StreamServer(faults={1: "dropped"})
        async with _chat(server) as chat:
            reply = chat.stream_reply(ROBOT, USER, error_suffix=" [cut]")

            async def answer() -> None:
                async with reply:
                    await _words(reply, WORDS[:60], 0.01)

            with pytest.raises(StreamInterruptedError):
                await answer()
        return server, reply

    server, reply = run_virtual(main)
    assert reply.calls == len(server.calls()) == 3  # first, the dropped one, the last piece


def test_a_client_deadline_shorter_than_an_updates_wait_does_not_end_the_stream() -> None:
    """The stream times its own calls: a deadline meant for whole calls must not turn an
    update's skipped permit into the stream's end (it then goes in the next call)."""

    async def main(loop: Any) -> tuple[StreamReply, StreamServer]:
        server = StreamServer(latency=0.05)
        async with _chat(server, rate_limit=10, deadline=0.5) as chat:
            others = chat.with_options(deadline=None)
            async with chat.stream_reply(ROBOT, USER) as reply:
                await reply.write("Hello")
                await asyncio.sleep(0.1)
                # Other traffic on the same API takes its permits for about two seconds.
                busy = [
                    asyncio.ensure_future(others.send_stream_chunk("@RBT#2", f"u{i}", "x"))
                    for i in range(20)
                ]
                await asyncio.sleep(0.2)
                await reply.write(" world")
                await asyncio.sleep(1.5)
                await reply.write("!")
            await asyncio.gather(*busy)
        return reply, server

    reply, server = run_virtual(main)
    assert reply.finished
    assert reply.delivered == "Hello world!"
    assert "".join(server.streams["key-1"]) == "Hello world!"
