"""Answers: the JSON envelope, the typed error for each documented code, bad bodies."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest

from tencent_chat_robots import (
    ERROR_CODES,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadResponseError,
    ClientClosedError,
    Endpoint,
    InternalServerError,
    InvalidParameterError,
    InvalidRequestError,
    LimitExceededError,
    MessageRejectedError,
    NotFoundError,
    NotRoomMemberError,
    PermissionDeniedError,
    RateLimitError,
    RawResponse,
    RequestError,
    TencentChat,
    TencentChatError,
    ValidationError,
)

from .conftest import ScriptedTransport, fail, ok

MakeChat = Callable[..., TencentChat]


# Written from the vendor's pages (shared/api-docs: each robot page's private codes) and
# Tencent's common REST error-code page (60000-79999), never from ERROR_CODES itself.
DOCUMENTED: dict[int, type[APIError]] = {
    # group_open_avchatroom_http_svc/add_robots
    10001: AuthenticationError,  # not logged in: admin account or usersig wrong
    10002: InternalServerError,  # system error, try again
    10003: InvalidRequestError,  # invalid request command
    10004: InvalidParameterError,  # invalid parameters
    10007: PermissionDeniedError,  # must be app admin or group owner
    10010: NotFoundError,  # group does not exist or was dissolved
    10015: InvalidParameterError,  # invalid group id
    # openim_robot_http_svc/create_robot (and delete_robot, get_all_robots)
    10008: InvalidRequestError,  # invalid request, e.g. robot quota reached
    40006: InternalServerError,  # internal error while setting the profile, try later
    40601: InvalidParameterError,  # profile field over 500 bytes
    70398: LimitExceededError,  # account count over the limit
    # room_engine_http_srv/add_robot (and delete_robot)
    100001: InternalServerError,  # internal server error, please retry
    100002: InvalidParameterError,  # invalid parameter
    100004: NotFoundError,  # room does not exist or was dismissed
    100005: NotRoomMemberError,  # non-room member
    100006: PermissionDeniedError,  # insufficient operation permissions
    100700: LimitExceededError,  # the number of robots reached the limit
    # common REST codes an admin call can meet
    60002: InvalidParameterError,  # HTTP parse error: check the URL
    60003: InvalidParameterError,  # the body is not valid JSON
    60004: AuthenticationError,  # the request URL or body account is wrong
    60005: AuthenticationError,  # the identifier is not a valid account
    60006: AuthenticationError,  # the SDKAppID is disabled or expired
    60007: RateLimitError,  # REST call frequency over the limit
    60008: InternalServerError,  # the service timed out, retry
    60010: PermissionDeniedError,  # needs the app admin
    60011: RateLimitError,  # SDKAppID call frequency over the limit
    60012: AuthenticationError,  # the SDKAppID is required
    60016: AuthenticationError,  # the app is disabled
    60018: RateLimitError,  # batch-count frequency over the limit
    60019: RateLimitError,  # batch-size frequency over the limit
    60020: PermissionDeniedError,  # the edition does not allow this API
    60021: AuthenticationError,  # the caller's IP is not allowed
    **dict.fromkeys(range(70001, 70021), AuthenticationError),  # UserSig checks (70001: expired)
    70050: RateLimitError,  # too many failed UserSig checks: locked for a while
    70052: AuthenticationError,  # the UserSig was invalidated
    70169: InternalServerError,  # internal timeout, retry
    70402: InvalidParameterError,  # invalid parameter
    70403: PermissionDeniedError,  # needs the app admin
    70500: InternalServerError,  # internal server error, retry
    # openim/sendmsg (robot-conversation.md, 2.1, from the message-error list)
    20001: InvalidParameterError,  # bad packet
    20003: NotFoundError,  # UserID invalid or not imported
    20004: InternalServerError,  # network error, retry
    20005: InternalServerError,  # internal error, retry
    20006: MessageRejectedError,  # refused by the app's before-send callback
    20007: MessageRejectedError,  # blacklisted
    20009: MessageRejectedError,  # not friends (friend checks on)
    20012: MessageRejectedError,  # sender muted
    90001: InvalidParameterError,  # JSON parse failed
    90002: InvalidParameterError,  # bad MsgBody
    90003: InvalidParameterError,  # To_Account missing
    90005: InvalidParameterError,  # MsgRandom missing
    90007: InvalidParameterError,  # MsgBody not an array
    90008: InvalidParameterError,  # From_Account missing or unknown
    90009: PermissionDeniedError,  # admin required
    90010: InvalidParameterError,  # element format wrong
    90026: InvalidParameterError,  # MsgLifeTime over 7 days
    90048: NotFoundError,  # account does not exist
    90992: InternalServerError,  # internal error, retry
    90994: InternalServerError,  # internal error, retry
    90995: InternalServerError,  # internal error, retry
    91000: InternalServerError,  # internal error, retry
    93000: InvalidParameterError,  # body too large
    80001: MessageRejectedError,  # text blocked as sensitive
    80002: InvalidParameterError,  # message too long
    # group_open_http_svc/send_group_msg (2.2)
    10016: MessageRejectedError,  # refused by the app's callback
    10017: MessageRejectedError,  # sender muted
    10019: NotFoundError,  # account does not exist
    10023: RateLimitError,  # message frequency limit: back off
}


def test_the_code_table_is_the_documented_one() -> None:
    assert ERROR_CODES == DOCUMENTED


@pytest.mark.parametrize(("code", "cls"), sorted(DOCUMENTED.items()))
async def test_each_documented_code_raises_its_class(
    make_chat: MakeChat, code: int, cls: type[APIError], no_backoff: None
) -> None:
    transport = ScriptedTransport(fail(code, "vendor says no", RequestId="Id-abc"))
    chat = make_chat(transport, max_retries=0, usersig="fixed")
    with pytest.raises(cls) as caught:
        await chat.add_robot_to_room("room-1", "@RBT#1")
    assert type(caught.value) is cls
    assert caught.value.code == code
    assert caught.value.info == "vendor says no"
    assert caught.value.request_id == "Id-abc"
    assert caught.value.endpoint == "room_engine_http_srv/add_robot"


async def test_unknown_code_raises_plain_api_error_keeping_the_code(make_chat: MakeChat) -> None:
    chat = make_chat(ScriptedTransport(fail(91234, "new")))
    with pytest.raises(APIError) as caught:
        await chat.delete_robot("@RBT#1")
    assert type(caught.value) is APIError
    assert caught.value.code == 91234
    assert caught.value.request_id is None


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (RawResponse(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>"), "HTTP 502"),
        (RawResponse(200, b"<html>maintenance</html>"), "not the documented JSON envelope"),
        (RawResponse(200, b"[1, 2]"), "not the documented JSON envelope"),
        (RawResponse(200, b'{"ActionStatus": "OK"}'), "not the documented JSON envelope"),
        (RawResponse(200, b'{"ErrorCode": "0", "ActionStatus": "OK"}'), "JSON envelope"),
        (RawResponse(200, b'{"ErrorCode": 0, "ActionStatus": "FAIL"}'), "ActionStatus 'FAIL'"),
        (RawResponse(200, b'{"ErrorCode": 0, "ActionStatus": "OK", "Robot_Account": "x"}'), "type"),
        (RawResponse(200, b'{"ErrorCode":0,"ActionStatus":"OK","Robot_Account":[1]}'), "type"),
        (RawResponse(200, b"[" * 100_000), "not the documented JSON envelope"),
        (RawResponse(200, b"\xff\xfe{}"), "not the documented JSON envelope"),
    ],
)
async def test_bad_responses_raise_bad_response_error(
    make_chat: MakeChat, answer: RawResponse, match: str, no_backoff: None
) -> None:
    chat = make_chat(ScriptedTransport(answer), max_retries=0)
    with pytest.raises(BadResponseError, match=match) as caught:
        await chat.get_all_robots()
    assert caught.value.status_code == answer.status_code
    assert caught.value.endpoint == Endpoint.GET_ALL_ROBOTS


async def test_bad_response_excerpt_is_short_printable_and_redacted(make_chat: MakeChat) -> None:
    page = b"<html>\x00\x07 proxy error for /v4/x?usersig=SECRETSIG&random=1 " + b"x" * 5000
    chat = make_chat(ScriptedTransport(RawResponse(503, page)), max_retries=0)
    with pytest.raises(BadResponseError) as caught:
        await chat.get_all_robots()
    excerpt = caught.value.excerpt
    assert len(excerpt) <= 200
    assert excerpt.isprintable()
    assert "SECRETSIG" not in excerpt
    assert "usersig=REDACTED" in excerpt


async def test_results_carry_request_id_and_ignore_unknown_keys(make_chat: MakeChat) -> None:
    transport = ScriptedTransport(ok(RequestId="Id-52f0-O-Seq-1", SomethingNew={"a": 1}))
    result = await make_chat(transport).add_robot_to_room("room-1", "@RBT#1")
    assert result.request_id == "Id-52f0-O-Seq-1"
    result = await make_chat(ScriptedTransport(ok())).create_robot("@RBT#1")
    assert result.request_id is None


def test_all_errors_share_one_base() -> None:
    for cls in {*ERROR_CODES.values(), ValidationError, APIConnectionError, BadResponseError}:
        assert issubclass(cls, TencentChatError)
    assert issubclass(ValidationError, ValueError)


@pytest.mark.parametrize(
    "error",
    [
        NotRoomMemberError(100005, "not a member", request_id="Id-1", endpoint="room/x"),
        APITimeoutError("request timed out", endpoint="e", request_sent=False),
        BadResponseError("HTTP 502", status_code=502, excerpt="<html>", endpoint="e"),
        ClientClosedError("closed", endpoint="e", request_sent=True),
        ValidationError("bad"),
    ],
)
def test_errors_survive_pickling_whole(error: TencentChatError) -> None:
    """Bulk jobs hand errors between processes: type, text and fields all come back."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_request_errors_carry_endpoint_and_request_id_on_one_base() -> None:
    for cls in (APIError, APIConnectionError, BadResponseError, ClientClosedError):
        assert issubclass(cls, RequestError)
    error = NotRoomMemberError(100005, "x", request_id="Id-9", endpoint="room/y")
    assert (error.endpoint, error.request_id) == ("room/y", "Id-9")
    assert not issubclass(ValidationError, RequestError)


@pytest.mark.parametrize(
    ("answer", "info", "text"),
    [
        ({"ActionStatus": "FAIL", "ErrorCode": 10004}, "", "no error info"),
        ({"ActionStatus": "FAIL", "ErrorCode": 10004, "ErrorInfo": None}, "", "no error info"),
        ({"ActionStatus": "FAIL", "ErrorCode": 10004, "RequestId": 7}, "", "no error info"),
    ],
)
async def test_missing_or_mistyped_error_fields_do_not_break_the_typed_error(
    make_chat: MakeChat, answer: dict[str, object], info: str, text: str
) -> None:
    chat = make_chat(ScriptedTransport(answer), max_retries=0)
    with pytest.raises(InvalidParameterError) as caught:
        await chat.get_all_robots()
    assert caught.value.info == info
    assert caught.value.request_id is None  # only a string RequestId is one
    assert text in str(caught.value)


@pytest.mark.parametrize(
    ("info", "fields", "text"),
    [
        ("new", {}, "error 91234: new"),
        ("", {"endpoint": "a/b"}, "error 91234 from a/b: no error info"),
        ("x", {"request_id": "Id-7"}, "error 91234: x (request id Id-7)"),
    ],
)
def test_api_error_text_names_only_what_is_known(
    info: str, fields: dict[str, str], text: str
) -> None:
    assert str(APIError(91234, info, **fields)) == text


def test_errors_made_by_hand_keep_their_fields_and_repr_names_the_class() -> None:
    """Users build these in their own tests of error handling."""
    error = NotRoomMemberError(100005, "not a member", request_id="Id-1", endpoint="room/x")
    assert repr(error) == (
        "NotRoomMemberError(code=100005, info='not a member', request_id='Id-1', endpoint='room/x')"
    )
    dropped = APIConnectionError("connection failed: reset", endpoint="a/b")
    assert (str(dropped), dropped.message, dropped.endpoint) == (
        "connection failed: reset",
        "connection failed: reset",
        "a/b",
    )
    assert dropped.request_sent is True  # unless told otherwise, the server may have it
    assert ClientClosedError("closed").request_sent is False
    assert BadResponseError("HTTP 502", status_code=502).excerpt == ""


async def test_a_call_refused_by_a_closed_client_was_not_sent(make_chat: MakeChat) -> None:
    transport = ScriptedTransport()
    chat = make_chat(transport)
    await chat.aclose()
    with pytest.raises(ClientClosedError) as caught:
        await chat.get_all_robots()
    assert caught.value.request_sent is False
    assert caught.value.endpoint == Endpoint.GET_ALL_ROBOTS
    assert transport.sent == []


async def test_an_answer_with_mistyped_fields_is_quoted_in_the_error(make_chat: MakeChat) -> None:
    answer = ok(Robot_Account="@RBT#1")  # the docs say a list
    chat = make_chat(ScriptedTransport(answer), max_retries=0)
    with pytest.raises(BadResponseError) as caught:
        await chat.get_all_robots()
    assert '"Robot_Account":"@RBT#1"' in caught.value.excerpt.replace(" ", "")
    assert str(caught.value).endswith("has fields of the wrong type")
