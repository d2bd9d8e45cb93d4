"""Message elements: a message to send as its MsgBody, and a received MsgBody read back.

Shapes from robot-conversation.md (1.1: ``{"MsgType": "TIMTextElem", "MsgContent":
{"Text": "hi"}}``; 2.1: ``TIMCustomElem`` ``{"Data", "Desc", "Ext"}``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tencent_chat_robots import CustomElem, OtherElem, TextElem, ValidationError
from tencent_chat_robots._elements import elements_from_json, elements_to_json, joined_text

FACE = {"MsgType": "TIMFaceElem", "MsgContent": {"Index": 1, "Data": "smile"}}


def test_a_received_body_reads_back_as_typed_elements_in_order() -> None:
    body = [
        {"MsgType": "TIMTextElem", "MsgContent": {"Text": "@@RBT#001 "}},
        FACE,
        {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "d", "Desc": "x", "Ext": "e"}},
        {"MsgType": "TIMTextElem", "MsgContent": {"Text": "hello"}},
        {"MsgType": "TIMCustomElem", "MsgContent": {}},  # every custom field is optional
    ]
    elements = elements_from_json(body)
    assert elements == (
        TextElem("@@RBT#001 "),
        OtherElem("TIMFaceElem", {"Index": 1, "Data": "smile"}),
        CustomElem("d", "x", "e"),
        TextElem("hello"),
        CustomElem(),
    )
    assert joined_text(elements) == "@@RBT#001 hello"
    assert joined_text(()) == ""
    # Read back and sent again, each element is what came.
    assert elements_to_json(list(elements)) == [
        body[0],
        FACE,
        body[2],
        body[3],
        {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "", "Desc": "", "Ext": ""}},
    ]


def test_an_element_of_another_type_is_sent_as_it_came() -> None:
    element = OtherElem("TIMLocationElem", {"Desc": "here", "Latitude": 1.5})
    assert element.to_json() == {
        "MsgType": "TIMLocationElem",
        "MsgContent": {"Desc": "here", "Latitude": 1.5},
    }
    assert OtherElem("TIMSoundElem").to_json() == {"MsgType": "TIMSoundElem", "MsgContent": {}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"MsgType": "TIMTextElem"}, "MsgBody is not an array"),
        ("hi", "MsgBody is not an array"),
        ([["TIMTextElem"]], r"MsgBody\[0\] is not an object"),
        ([{"MsgContent": {}}], r"MsgBody\[0\] has no MsgType string and MsgContent object"),
        ([{"MsgType": 5, "MsgContent": {}}], r"MsgBody\[0\] has no MsgType"),
        ([{"MsgType": "TIMTextElem", "MsgContent": []}], r"MsgBody\[0\] has no MsgType"),
        ([FACE, {"MsgType": "TIMTextElem", "MsgContent": {"Text": 5}}], r"MsgBody\[1\]: text"),
        ([{"MsgType": "TIMTextElem", "MsgContent": {}}], r"MsgBody\[0\]: text must be a string"),
        ([{"MsgType": "TIMCustomElem", "MsgContent": {"Data": 1}}], r"MsgBody\[0\]: data"),
        ([{"MsgType": "TIMTextElem", "MsgContent": {"Text": "\ud800"}}], "not valid Unicode"),
    ],
)
def test_a_received_body_of_another_shape_is_refused_saying_where(body: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        elements_from_json(body)


def test_an_element_missing_its_content_reads_as_empty() -> None:
    # MsgContent absent: an element of another type, with no content.
    assert elements_from_json([{"MsgType": "TIMFaceElem"}]) == (OtherElem("TIMFaceElem", {}),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "MsgBody must hold at least one element"),
        (b"hi", "a message is a str or a list of elements, not bytes"),
        (5, "a message is a str or a list of elements, not int"),
        ([TextElem("a"), 5], r"MsgBody\[1\] must be a TextElem, a CustomElem or a dict, not int"),
        ([{"MsgType": "", "MsgContent": {}}], r"MsgBody\[0\].MsgType must not be empty"),
        ([{"MsgType": 3, "MsgContent": {}}], r"MsgBody\[0\].MsgType must be a string, not int"),
        (
            [{"MsgType": "TIMFaceElem", "MsgContent": 1}],
            r"MsgBody\[0\].MsgContent must be an object",
        ),
        (
            [{"MsgType": "TIMTextElem", "MsgContent": {"Text": None}}],
            r"Text must be a string, not NoneType",
        ),
        ("\udcff", r"text is not valid Unicode text: '\\udcff'"),
    ],
)
def test_a_message_to_send_breaking_a_rule_says_which_and_where(body: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        elements_to_json(body)


def test_one_element_or_a_dict_alone_is_a_message_of_one() -> None:
    assert elements_to_json(TextElem("a")) == [
        {"MsgType": "TIMTextElem", "MsgContent": {"Text": "a"}}
    ]
    assert elements_to_json(FACE) == [FACE]
    assert elements_to_json(CustomElem(data="d")) == [
        {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "d", "Desc": "", "Ext": ""}}
    ]
