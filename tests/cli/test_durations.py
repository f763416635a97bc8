"""Durations on the command line: ``--for 2h``, ``--duration 1d``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from seamwatch.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("1h30m", timedelta(minutes=90)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_a_number_with_a_unit_is_a_duration(text, expected):
    assert parse_duration(text) == expected


def test_a_zero_duration_is_named_as_no_time_rather_than_empty():
    with pytest.raises(ValueError) as refused:
        parse_duration("0s")
    assert str(refused.value) == "'0s' is no time at all; a duration must be longer than zero"


def test_a_duration_without_a_unit_shows_the_accepted_forms():
    with pytest.raises(ValueError, match=r"use a number with a unit, e\.g\. 30m"):
        parse_duration("10")
