"""The money at risk of an alert is written with its currency, or says why it cannot be."""

from __future__ import annotations

import pytest

from detectors.alert_text import currency_list, currency_split, money_text, single_currency
from seamwatch.money import amount_text


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
        # a slow-calls alert puts no money at risk: a bare "0.00" read as a missing figure
        (0.0, {}, "none", None),
    ],
)
def test_money_is_written_with_its_currency_or_says_why_not(total, by_currency, text, currency):
    assert money_text(total, by_currency) == text
    assert single_currency(total, by_currency) == currency


@pytest.mark.parametrize(
    "amount, currency, text",
    [
        (4321.0, "EUR", "4,321.00 EUR"),
        # ISO 4217 gives these no minor unit: "120,000.00 JPY" wrote cents that do not exist
        (120000.0, "JPY", "120,000 JPY"),
        (1500000.0, "KRW", "1,500,000 KRW"),
        (89990.0, "CLP", "89,990 CLP"),
        # and these three: 1.235 KWD was written 1.24
        (1.235, "KWD", "1.235 KWD"),
        (2500.125, "BHD", "2,500.125 BHD"),
        (12.3456, "CLF", "12.3456 CLF"),
        # a code as a sender wrote it, in lower case, is the same currency
        (120000.0, "jpy", "120,000 jpy"),
        # a code no list knows, and no code at all, get two decimals
        (42.0, "XYZ", "42.00 XYZ"),
        (42.0, "", "42.00"),
        (42.0, None, "42.00"),
    ],
)
def test_each_amount_has_its_currencys_decimals(amount, currency, text):
    assert amount_text(amount, currency) == text


@pytest.mark.parametrize(
    "total, by_currency, text",
    [
        (120000.0, {"JPY": 120000.0}, "120,000 JPY"),
        (
            123000.0,
            {"EUR": 3000.0, "JPY": 120000.0},
            "3,000.00 EUR + 120,000 JPY (mixed currencies)",
        ),
        (1.235, {"KWD": 1.235}, "1.235 KWD"),
        (
            120012.5,
            {"JPY": 120000.0},
            "120,000 JPY + 12.50 in an unknown currency (mixed currencies)",
        ),
        # under half a yen is a rounding remainder, as under half a cent is, not money of
        # an unknown currency
        (1000.3, {"EUR": 1000.0, "JPY": 0.3}, "1,000.00 EUR"),
    ],
)
def test_mixed_and_single_currencies_keep_their_own_decimals(total, by_currency, text):
    assert money_text(total, by_currency) == text


def test_the_split_rounds_each_currency_to_its_minor_units():
    split = currency_split(120001.2345, {"JPY": 120000.4, "KWD": 0.8345})
    assert split == [("JPY", 120000.0), ("KWD", 0.835)]
    assert currency_list(120001.2345, {"JPY": 120000.4, "KWD": 0.8345}) == [
        {"currency": "JPY", "amount": 120000.0},
        {"currency": "KWD", "amount": 0.835},
    ]
