"""Free text people give: its limits, and how errors quote it and listings show it."""

from __future__ import annotations

import pytest

from seamwatch.durations import parse_duration
from seamwatch.user_text import (
    NAME_LIMIT,
    QUOTE_LIMIT,
    TextProblem,
    check_text,
    one_line,
    quoted,
)


def test_a_long_value_is_quoted_in_at_most_the_limit_with_an_ellipsis():
    shown = quoted("x" * 20_000)
    assert len(shown) == QUOTE_LIMIT
    assert shown.startswith("'xxx") and shown.endswith("x…'")
    assert quoted("open") == "'open'"


def test_a_value_within_its_limit_and_on_one_line_is_kept():
    assert check_text("by", "Ana María O'Neil", NAME_LIMIT) == "Ana María O'Neil"
    assert check_text("by", "é" * NAME_LIMIT, NAME_LIMIT) == "é" * NAME_LIMIT


def test_an_over_long_value_names_the_field_its_length_and_the_limit():
    with pytest.raises(TextProblem) as refused:
        check_text("--by", "x" * 5_000, NAME_LIMIT)
    message = str(refused.value)
    assert message.startswith("--by is 5,000 characters long; at most 100 are allowed (got 'xx")
    assert len(message) < 200


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("ana\nevil", "a line break (\\n) at character 4"),
        ("ana\tevil", "a tab (\\t) at character 4"),
        ("ana\rok", "a carriage return (\\r) at character 4"),
        ("ana\x00", "a control character (\\x00) at character 4"),
        ("\x1b[31mana", "a control character (\\x1b) at character 1"),
        ("ana\u2028evil", "a control character (\\u2028) at character 4"),
        ("ana\u202eliam", "a control character (\\u202e) at character 4"),
    ],
)
def test_a_control_character_is_named_with_where_it_is(value, named):
    with pytest.raises(TextProblem) as refused:
        check_text("reason", value, 500)
    message = str(refused.value)
    assert message.startswith(f"reason holds {named}; ")
    assert "at most 500 characters" in message
    assert "\n" not in message and "\x1b" not in message


def test_stored_text_with_control_characters_is_shown_on_one_line():
    assert one_line("ana\nevil") == "ana\\nevil"
    assert one_line("\x1b[2Jana\t") == "\\x1b[2Jana\\t"
    assert one_line("Ana María") == "Ana María"


def test_a_duration_error_quotes_a_long_value_cut_short():
    with pytest.raises(ValueError) as refused:
        parse_duration("9" * 20_000)
    assert len(str(refused.value)) < 200
    assert "…' is not a duration" in str(refused.value)
