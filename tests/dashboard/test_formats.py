"""Numbers as the pages write them."""

from __future__ import annotations

import math

import pytest

from dashboard.formats import count_text, duration_text, percent_text


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (350, "350 ms"),
        (2360, "2.4 s"),
        (1_693_400, "28.2 min"),  # was written "1,693.4 s"
        (9_000_000, "2.5 h"),
        (3 * 86_400_000, "3.0 days"),
        (None, "—"),
        (math.nan, "—"),
    ],
)
def test_durations_read_in_the_unit_that_fits(ms, text):
    assert duration_text(ms) == text


def test_rates_read_as_percentages_and_counts_with_separators():
    assert (percent_text(0.0026), percent_text(None)) == ("0.26%", "—")
    assert (count_text(12345), count_text(math.nan)) == ("12,345", "—")
