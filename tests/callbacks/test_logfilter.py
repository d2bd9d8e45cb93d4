"""A callback's Sign out of access logs (``SignFilter``), and a warning for a weak
token (finding: uvicorn's access log kept every Sign, and a five-letter token fell to a
pure-Python search of one logged line)."""

from __future__ import annotations

import io
import logging
from typing import Any
from urllib.parse import urlencode

import pytest

from tencent_chat_robots.callbacks import RobotCallbacks, SignFilter

from ._helpers import SDKAPPID, TOKEN, query


def _record(msg: str, args: Any) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, args, None)


def test_uvicorns_access_line_keeps_its_shape_without_the_sign() -> None:
    uvicorn_logging = pytest.importorskip("uvicorn.logging")
    params = query()
    path = "/tencent/callback?" + urlencode(params)
    record = _record('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "POST", path, "1.1", 200))
    assert SignFilter().filter(record) is True
    line = uvicorn_logging.AccessFormatter("%(client_addr)s %(request_line)s %(status_code)s")
    text = line.format(record)
    assert params["Sign"] not in text
    assert text.count("Sign=REDACTED") == 1
    assert f"RequestTime={params['RequestTime']}" in text
    assert text.startswith("127.0.0.1:5000 POST /tencent/callback?SdkAppid=1400000000")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "POST /cb?SdkAppid=1&Sign=ab12&RequestTime=9",
            "POST /cb?SdkAppid=1&Sign=REDACTED&RequestTime=9",
        ),
        ("GET /cb?sign=ab12 HTTP/1.1", "GET /cb?sign=REDACTED HTTP/1.1"),
        ("/cb%3FSdkAppid%3D1%26Sign%3Dab12%26x%3D1", "/cb%3FSdkAppid%3D1%26Sign%3DREDACTED"),
        ("Location: /cb/?Sign=ab12", "Location: /cb/?Sign=REDACTED"),
        ("DesignSign=kept&Signature=kept", "DesignSign=kept&Signature=kept"),
        ("no query at all", "no query at all"),
    ],
)
def test_sign_values_are_redacted_wherever_a_parameter_starts(text: str, shown: str) -> None:
    record = _record("%s", (text,))
    SignFilter().filter(record)
    assert record.getMessage() == shown
    message_only = _record(text, None)
    SignFilter().filter(message_only)
    assert message_only.getMessage() == shown


def test_mapping_arguments_and_objects_whose_str_is_a_url_are_redacted() -> None:
    class URL:
        def __str__(self) -> str:
            return "/cb?Sign=ab12"

    record = _record("%(path)s %(status)d", None)
    record.args = {"path": "/cb?Sign=ab12", "status": 200}
    SignFilter().filter(record)
    assert record.getMessage() == "/cb?Sign=REDACTED 200"
    record = _record("%s %d %s", (URL(), 200, None))
    SignFilter().filter(record)
    assert record.getMessage() == "/cb?Sign=REDACTED 200 None"


class _SafeAtoms(dict):  # type: ignore[type-arg]
    """Gunicorn's access-log arguments (glogging.SafeAtoms): a dict answering "-" for
    a header atom the request lacks."""

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__(key) if key in self else "-"


def test_gunicorns_access_arguments_keep_their_class_and_its_missing_headers() -> None:
    # Found by a hostile review: rebuilt as a plain dict, a missing header's atom raised
    # KeyError in the formatter and the access line was lost.
    atoms = _SafeAtoms({"r": "POST /cb?SdkAppid=1&Sign=ab12 HTTP/1.1", "s": 200})
    record = _record('%(r)s %(s)s "%({x-forwarded-for}i)s"', atoms)
    SignFilter().filter(record)
    assert type(record.args) is _SafeAtoms
    assert record.getMessage() == 'POST /cb?SdkAppid=1&Sign=REDACTED HTTP/1.1 200 "-"'


def test_on_a_logger_it_redacts_what_its_handlers_write() -> None:
    stream = io.StringIO()
    log = logging.getLogger("tests.callbacks.access")
    log.propagate = False
    log.addHandler(logging.StreamHandler(stream))
    log.addFilter(SignFilter())
    log.warning('%s "POST %s"', "10.0.0.1", "/cb?Sign=" + "a" * 64)
    assert stream.getvalue() == '10.0.0.1 "POST /cb?Sign=REDACTED"\n'


@pytest.mark.parametrize(
    ("token", "warned"), [("bot42", True), ("x" * 15, True), ("x" * 16, False)]
)
def test_a_token_under_16_characters_is_warned_about_once_at_construction(
    caplog: pytest.LogCaptureFixture, token: str, warned: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    RobotCallbacks(SDKAPPID, token=token)
    weak = [r for r in caplog.records if "shorter than 16 characters" in r.getMessage()]
    assert len(weak) == (1 if warned else 0)
    assert all(token not in r.getMessage() for r in caplog.records)
    assert len(TOKEN) >= 16  # the tests' own token is not weak
