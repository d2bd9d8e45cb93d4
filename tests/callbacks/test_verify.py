"""Verification: SdkAppid, Sign and the RequestTime window (robot-conversation.md §1)."""

from __future__ import annotations

import logging

import pytest

from tencent_chat_robots.callbacks import RobotCallbacks
from tencent_chat_robots.callbacks._verify import expected_sign, verify

from ._helpers import C2C, NOW, OK, SDKAPPID, TOKEN, Clock, Recorder, answer, c2c, encode, query

# The documented example, written out from the docs, not computed.
DOC_TOKEN = "xxxxyyyy"
DOC_TIME = "1669872112"
DOC_SIGN = "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061"


@pytest.mark.parametrize(
    ("token", "request_time", "sign"),
    [
        (DOC_TOKEN, DOC_TIME, DOC_SIGN),
        # Plain concatenation: the token and the time are not separated or reordered.
        (DOC_TOKEN, "1669872113", None),
        ("xxxxyyyz", DOC_TIME, None),
    ],
)
def test_the_sign_of_the_documented_example(
    token: str, request_time: str, sign: str | None
) -> None:
    if sign is not None:
        assert expected_sign(token, request_time) == sign
    else:
        assert expected_sign(token, request_time) != DOC_SIGN


def _doc_query(**changes: str | None) -> dict[str, str]:
    params = {
        "SdkAppid": str(SDKAPPID),
        "CallbackCommand": C2C,
        "contenttype": "json",
        "RequestTime": DOC_TIME,
        "Sign": DOC_SIGN,
    }
    for name, value in changes.items():
        if value is None:
            params.pop(name)
        else:
            params[name] = value
    return params


@pytest.mark.parametrize(
    ("changes", "status", "reason"),
    [
        ({}, None, None),
        ({"SdkAppid": None}, 403, "sdkappid"),
        ({"SdkAppid": "1400000001"}, 403, "sdkappid"),
        ({"SdkAppid": "01400000000"}, 403, "sdkappid"),
        ({"Sign": None}, 401, "sign"),
        ({"Sign": DOC_SIGN.upper()}, 401, "sign"),
        ({"Sign": DOC_SIGN[:-1]}, 401, "sign"),
        ({"Sign": DOC_SIGN + "0"}, 401, "sign"),
        ({"Sign": DOC_SIGN[:-1] + "0"}, 401, "sign"),
        ({"Sign": DOC_SIGN + "\n"}, 401, "sign"),
        ({"RequestTime": None}, 401, "request_time"),
        ({"RequestTime": "1669872112.0"}, 401, "request_time"),
        ({"RequestTime": "-1669872112"}, 401, "request_time"),
        ({"RequestTime": "١٦٦٩٨٧٢١١٢"}, 401, "request_time"),  # digits, not ASCII ones
        ({"RequestTime": "1669872113"}, 401, "sign"),  # signed for another time
    ],
)
def test_verification_table(
    changes: dict[str, str | None], status: int | None, reason: str | None
) -> None:
    refusal = verify(
        _doc_query(**changes), sdkappid=SDKAPPID, token=DOC_TOKEN, max_skew=60, now=1669872112.0
    )
    if status is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert (refusal.status, refusal.reason) == (status, reason)


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(0, True), (60, True), (-60, True), (60.001, False), (-60.001, False), (3600, False)],
)
def test_the_window_is_sixty_seconds_either_way(offset: float, accepted: bool) -> None:
    # now is the receiver's clock; the request was signed at 1669872112.
    refusal = verify(
        _doc_query(), sdkappid=SDKAPPID, token=DOC_TOKEN, max_skew=60, now=1669872112 + offset
    )
    assert (refusal is None) is accepted
    if not accepted:
        assert refusal is not None
        assert (refusal.status, refusal.reason) == (401, "request_time")


async def test_the_receiver_reads_its_injected_clock_for_the_window() -> None:
    clock = Clock(NOW)
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=clock)
    handler = Recorder()
    bot.on_c2c_message(handler)
    assert answer(await bot.dispatch(query(request_time=NOW), encode(c2c("a")))) == (200, OK)
    clock.now = NOW + 60.001  # the same signed request, replayed a moment too late
    status, body = answer(await bot.dispatch(query(request_time=NOW), encode(c2c("b"))))
    assert status == 401
    assert body["ErrorCode"] == 1
    # A request from the future (a signer's clock ahead) is as stale as one from the past.
    clock.now = NOW - 61
    status, _ = answer(await bot.dispatch(query(request_time=NOW), encode(c2c("c"))))
    assert status == 401
    await bot.join()
    assert [event.msg_key for event in handler.events] == ["a"]
    assert bot.stats["refused:request_time"] == 2


async def test_a_narrower_window_is_honoured() -> None:
    clock = Clock(NOW + 5)
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=clock, max_skew=4)
    status, _ = answer(await bot.dispatch(query(request_time=NOW), encode(c2c())))
    assert status == 401


@pytest.mark.parametrize(
    ("params", "status", "reason"),
    [
        (query(SdkAppid="1400000001"), 403, "sdkappid"),
        ({k: v for k, v in query().items() if k != "SdkAppid"}, 403, "sdkappid"),
        ({k: v for k, v in query().items() if k != "Sign"}, 401, "sign"),
        (query(Sign=query()["Sign"].upper()), 401, "sign"),
        (query(Sign=query()["Sign"][:32]), 401, "sign"),
        (query(token="another-token"), 401, "sign"),
        (query(RequestTime="soon"), 401, "request_time"),
    ],
)
async def test_refused_callbacks_call_no_handler_and_say_why(
    params: dict[str, str], status: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=Clock())
    handler = Recorder()
    bot.on_c2c_message(handler)
    got_status, body = answer(await bot.dispatch(params, encode(c2c())))
    assert got_status == status
    assert body["ActionStatus"] == "FAIL"
    assert body["ErrorCode"] == 1
    assert 0 < len(body["ErrorInfo"]) < 80
    assert bot.stats["refused"] == 1
    assert bot.stats[f"refused:{reason}"] == 1
    (record,) = [r for r in caplog.records if "refused a callback" in r.getMessage()]
    assert record.levelno == logging.WARNING
    text = record.getMessage()
    assert str(status) in text
    assert TOKEN not in text
    for sign in {params.get("Sign"), expected_sign(TOKEN, params.get("RequestTime", ""))}:
        assert sign is None or sign not in text
    # ... and the receiver goes on serving.
    assert answer(await bot.dispatch(query(), encode(c2c()))) == (200, OK)
    await bot.join()
    assert len(handler.events) == 1


async def test_without_a_token_only_the_sdkappid_is_checked_and_a_warning_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    bot = RobotCallbacks(SDKAPPID)
    assert any("no token" in record.getMessage() for record in caplog.records)
    handler = Recorder()
    bot.on_c2c_message(handler)
    assert answer(await bot.dispatch(query(token=None), encode(c2c())))[0] == 200
    assert answer(await bot.dispatch(query(token=None, SdkAppid="1"), encode(c2c("k2"))))[0] == 403
    await bot.join()
    assert len(handler.events) == 1
