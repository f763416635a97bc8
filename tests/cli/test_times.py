"""The one way times are written in answers and labels."""

import doctest
from datetime import UTC, datetime

import pytest

import seamwatch.tables
import seamwatch.times
from seamwatch.times import time_or_ago, utc_text_or_none

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def test_the_examples_hold():
    assert doctest.testmod(seamwatch.times).failed == 0
    assert doctest.testmod(seamwatch.tables).failed == 0


def test_a_start_is_a_time_or_a_duration_before_now():
    assert time_or_ago("2025-03-10T13:00:00+01:00", NOW) == NOW
    assert time_or_ago("2025-03-10T12:00:00Z", NOW) == NOW
    assert time_or_ago("1d", NOW) == datetime(2025, 3, 9, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soon", "'soon' is neither a time (2025-03-10T12:00:00Z) nor a duration before now"),
        ("1000000w", "'1000000w' is outside the supported range, 1678-01-01 to 2261-12-31"),
        # durations both, which were called "neither a time nor a duration"
        ("0s", "'0s' is no time at all; a duration must be longer than zero."),
        ("1" + "0" * 21 + "s", f"'1{'0' * 21}s' is outside the supported range, 1678-01-01"),
    ],
)
def test_a_start_that_is_neither_is_refused_naming_it(text, message):
    with pytest.raises(ValueError) as refused:
        time_or_ago(text, NOW)
    assert str(refused.value).startswith(message)


def test_a_missing_time_stays_missing():
    import pandas as pd

    assert utc_text_or_none(None) is None
    assert utc_text_or_none(pd.NaT) is None
