"""The one way times are written in answers and labels."""

import doctest

import seamwatch.times
from seamwatch.times import utc_text_or_none


def test_the_examples_hold():
    assert doctest.testmod(seamwatch.times).failed == 0


def test_a_missing_time_stays_missing():
    import pandas as pd

    assert utc_text_or_none(None) is None
    assert utc_text_or_none(pd.NaT) is None
