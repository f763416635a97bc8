"""The money at risk of an alert is written with its currency, or says why it cannot be."""

from __future__ import annotations

import pytest

from detectors.alert_text import money_text, single_currency


@pytest.mark.parametrize(
    "total, by_currency, text, currency",
    [
        (4321.0, {"EUR": 4321.0}, "4,321.00 EUR", "EUR"),
        # a chat message read "Money at risk 4,321.00" though every span named its currency
        (4321.0, {}, "4,321.00 (currency unknown)", None),
        (4321.0, {"": 4321.0}, "4,321.00 (currency unknown)", None),
        (
            4321.0,
            {"USD": 1321.0, "EUR": 3000.0},
            "3,000.00 EUR + 1,321.00 USD (mixed currencies)",
            None,
        ),
        (
            4321.0,
            {"EUR": 3000.0},
            "3,000.00 EUR + 1,321.00 in an unknown currency (mixed currencies)",
            None,
        ),
        # a float sum a hair off the total is not money of another currency
        (300.5, {"EUR": 300.49999999999994}, "300.50 EUR", "EUR"),
        (0.0, {}, "0.00", None),
    ],
)
def test_money_is_written_with_its_currency_or_says_why_not(total, by_currency, text, currency):
    assert money_text(total, by_currency) == text
    assert single_currency(total, by_currency) == currency
