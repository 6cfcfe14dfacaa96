"""The words of a dead letter's ``Reason``: every problem on one line, and fit for a header."""

from __future__ import annotations

import pytest

from contract.deadletters import MAX_HEADER_TEXT, header_text, refusal_reason
from contract.events import FieldError, InvalidEvents, MalformedJSON
from contract.names import result_msg_id


def test_a_refusal_names_every_field_on_one_line() -> None:
    errors = [FieldError(0, "type", "must be one of game"), FieldError(0, "", "must be a JSON object")]
    assert refusal_reason(InvalidEvents(errors)) == "type: must be one of game; (event): must be a JSON object"


def test_a_refusal_of_what_is_not_json_says_where() -> None:
    error = MalformedJSON("EOF while parsing an object", 1, 1)
    assert refusal_reason(error) == "(body): malformed JSON at line 1 column 1: EOF while parsing an object"


@pytest.mark.parametrize(
    ("text", "header"),
    [
        ("plain words", "plain words"),
        ("two\r\nlines", "two  lines"),
        ("caf\u00e9 \U0001f600", "caf\\xe9 \\U0001f600"),
        ("x" * (MAX_HEADER_TEXT + 5), "x" * MAX_HEADER_TEXT),
    ],
)
def test_header_text_is_one_line_of_ascii_and_bounded(text: str, header: str) -> None:
    assert header_text(text) == header


def test_a_result_publish_is_identified_by_its_kv_key() -> None:
    assert result_msg_id("engagement.s1.1714557600") == "result:engagement.s1.1714557600"
