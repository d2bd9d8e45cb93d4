"""OpenTelemetry: a span per callback under the framework's server span, the handler's
span under it, the callback metrics; and no secret in any of it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import tencent_chat_robots._telemetry as telemetry_module
from tencent_chat_robots.callbacks import C2CMessage, RobotCallbacks

from ..conftest import OTel
from ._helpers import SDKAPPID, SIGNAL, TOKEN, Clock, Recorder, c2c, encode, query, signal


def make_bot(**options: Any) -> RobotCallbacks:
    return RobotCallbacks(SDKAPPID, token=TOKEN, clock=Clock(), **options)


def _named(otel: OTel, name: str) -> list[Any]:
    return [span for span in otel.spans() if span.name == name]


def _everything_in(spans: list[Any]) -> str:
    """Every attribute, event and status of ``spans`` as one text, to search for secrets."""
    parts = []
    for span in spans:
        parts.append(span.name)
        parts.append(json.dumps(dict(span.attributes), default=str))
        parts.extend(json.dumps(dict(event.attributes), default=str) for event in span.events)
        parts.append(str(span.status.description))
    return "\n".join(parts)


async def test_a_callback_span_under_the_server_span_and_the_handler_span_under_it(
    otel: OTel,
) -> None:
    bot = make_bot()
    bot.on_c2c_message(Recorder())
    tracer = trace.get_tracer("a web framework")
    with tracer.start_as_current_span("POST /tencent/callback", kind=SpanKind.SERVER) as server:
        await bot.dispatch(query(), encode(c2c(text="my secret text")))
    await bot.join()
    (callback,) = _named(otel, "tencent_chat callback Bot.OnC2CMessage")
    (handler,) = _named(otel, "tencent_chat handle Bot.OnC2CMessage")
    assert callback.kind == SpanKind.INTERNAL
    assert callback.parent.span_id == server.get_span_context().span_id
    assert callback.instrumentation_scope.name == "tencent_chat_robots"
    assert dict(callback.attributes) == {
        "tencent_chat.callback.command": "Bot.OnC2CMessage",
        "tencent_chat.robot": "@RBT#001",
        "tencent_chat.callback.outcome": "handled",
    }
    assert handler.kind == SpanKind.INTERNAL
    assert handler.parent.span_id == callback.context.span_id
    assert handler.context.trace_id == server.get_span_context().trace_id
    assert handler.attributes["tencent_chat.handler.outcome"] == "ok"
    shown = _everything_in(otel.spans())
    assert "my secret text" not in shown
    assert query()["Sign"] not in shown
    assert TOKEN not in shown


@pytest.mark.parametrize(
    ("body", "params", "outcome"),
    [
        (c2c(From_Account="@RBT#002"), query(), "looped"),
        (c2c(), query(token="forged"), "refused"),
    ],
)
async def test_the_outcome_is_on_the_span(
    otel: OTel, body: dict[str, Any], params: dict[str, str], outcome: str
) -> None:
    bot = make_bot()
    bot.on_c2c_message(Recorder())
    await bot.dispatch(params, encode(body))
    (callback,) = _named(otel, "tencent_chat callback Bot.OnC2CMessage")
    assert callback.attributes["tencent_chat.callback.outcome"] == outcome
    assert _named(otel, "tencent_chat handle Bot.OnC2CMessage") == []


async def test_a_duplicate_and_a_refusal_reason_are_on_their_spans(otel: OTel) -> None:
    bot = make_bot()
    bot.on_c2c_message(Recorder())
    await bot.feed(c2c())
    await bot.feed(c2c())
    await bot.dispatch(query(), b"[]")
    outcomes = [
        (
            span.attributes["tencent_chat.callback.outcome"],
            span.attributes.get("tencent_chat.callback.refusal"),
        )
        for span in sorted(otel.spans(), key=lambda span: span.start_time)
        if span.name.startswith("tencent_chat callback")
    ]
    assert outcomes == [("handled", None), ("duplicate", None), ("refused", "body")]


async def test_a_forged_unknown_command_does_not_name_spans_or_metrics(otel: OTel) -> None:
    bot = make_bot()
    await bot.dispatch(query("Made.Up" + "x" * 500, token="forged"), b"{}")
    (callback,) = [span for span in otel.spans() if span.name.startswith("tencent_chat callback")]
    assert callback.name == "tencent_chat callback other"
    (point,) = otel.points("tencent_chat.callbacks")
    assert point.attributes["tencent_chat.callback.command"] == "other"


async def test_a_handlers_exception_is_recorded_redacted_on_its_span(otel: OTel) -> None:
    bot = make_bot()

    @bot.on_c2c_message
    async def broken(event: C2CMessage) -> None:
        raise RuntimeError(f"token was {TOKEN}")

    await bot.feed(c2c())
    (handler,) = _named(otel, "tencent_chat handle Bot.OnC2CMessage")
    assert handler.status.status_code == StatusCode.ERROR
    assert handler.attributes["tencent_chat.handler.outcome"] == "error"
    (event,) = handler.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "RuntimeError"
    assert event.attributes["exception.message"] == "token was REDACTED"
    assert "REDACTED" in event.attributes["exception.stacktrace"]
    (callback,) = _named(otel, "tencent_chat callback Bot.OnC2CMessage")
    assert callback.status.status_code == StatusCode.UNSET  # the answer was fine
    assert TOKEN not in _everything_in(otel.spans())


async def test_a_signal_past_its_deadline_marks_its_handler_span(otel: OTel) -> None:
    import asyncio

    bot = make_bot(signal_deadline=0.01)
    bot.on_signal_message(Recorder(gate=asyncio.Event()))
    await bot.dispatch(query(SIGNAL), encode(signal()))
    await bot.join()
    (handler,) = _named(otel, f"tencent_chat handle {SIGNAL}")
    assert handler.attributes["tencent_chat.handler.outcome"] == "timeout"
    assert handler.status.status_code == StatusCode.ERROR


async def test_callbacks_are_counted_and_timed(otel: OTel) -> None:
    bot = make_bot()
    bot.on_c2c_message(Recorder())
    await bot.feed(c2c())
    await bot.feed(c2c())
    await bot.dispatch(query(), b"not json")
    counts = {
        (
            point.attributes["tencent_chat.callback.command"],
            point.attributes["tencent_chat.callback.outcome"],
        ): point.value
        for point in otel.points("tencent_chat.callbacks")
    }
    assert counts == {
        ("Bot.OnC2CMessage", "handled"): 1,
        ("Bot.OnC2CMessage", "duplicate"): 1,
        ("Bot.OnC2CMessage", "refused"): 1,
    }
    acks = otel.points("tencent_chat.callback.ack.duration")
    assert sum(point.count for point in acks) == 3
    (handled,) = otel.points("tencent_chat.callback.handler.duration")
    assert handled.count == 1
    assert handled.attributes["tencent_chat.handler.outcome"] == "ok"
    assert otel.described["tencent_chat.callback.ack.duration"][0] == "s"
    assert otel.described["tencent_chat.callback.handler.duration"][0] == "s"


async def test_the_switch_turns_callback_telemetry_off(
    otel: OTel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(telemetry_module.ENV_ENABLED, "false")
    bot = make_bot()
    bot.on_c2c_message(Recorder())
    await bot.feed(c2c())
    assert otel.spans() == []
    assert otel.points("tencent_chat.callbacks") == []


async def test_without_opentelemetry_callbacks_work(
    otel: OTel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_module, "otel_context", None)
    bot = make_bot()
    handler = Recorder()
    bot.on_c2c_message(handler)
    assert bot._telemetry is None
    assert (await bot.feed(c2c()))[0] == 200
    assert len(handler.events) == 1
    assert otel.spans() == []


async def test_the_handlers_own_spans_are_children_of_its_span(otel: OTel) -> None:
    bot = make_bot()

    @bot.on_c2c_message
    async def reply(event: C2CMessage) -> None:
        with trace.get_tracer("an app").start_as_current_span("reply work"):
            pass

    await bot.feed(c2c())
    (handler,) = _named(otel, "tencent_chat handle Bot.OnC2CMessage")
    (work,) = _named(otel, "reply work")
    assert work.parent.span_id == handler.context.span_id
    assert work.end_time <= handler.end_time


async def test_a_queued_handlers_span_is_under_its_own_callbacks_span(otel: OTel) -> None:
    import asyncio

    bot = make_bot(max_handlers=1)
    gate = asyncio.Event()
    bot.on_c2c_message(Recorder(gate=gate))
    await bot.dispatch(query(), encode(c2c("first")))
    await bot.dispatch(query(), encode(c2c("queued")))
    gate.set()
    await bot.join()
    callbacks = sorted(
        _named(otel, "tencent_chat callback Bot.OnC2CMessage"), key=lambda span: span.start_time
    )
    handlers = sorted(
        _named(otel, "tencent_chat handle Bot.OnC2CMessage"), key=lambda span: span.start_time
    )
    assert [h.parent.span_id for h in handlers] == [c.context.span_id for c in callbacks]
