"""The priority weighs money at risk in one reporting currency, with the severity file's rates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from detectors.alert_actions import list_alerts
from detectors.severity import SeverityFileError, load_severity, parse_severity
from seamwatch.money import Converted, convert
from tests.detectors.test_alert_actions import record_alert

TIERS = "tiers:\n  critical: {weight: 1}\ndefault_tier: critical\n"
# three lines of tiers, so that the money section begins on line 4
MONEY = TIERS + "money:\n  reporting_currency: EUR\n  rates:\n"


def _listed(store, money_by_currency, severity=None):
    """The one open alert, on a critical flow, with peak score 8 and money by currency."""
    record_alert(store, "billing.invoice-post", datetime.now(UTC), None, money_by_currency)
    [alert] = list_alerts(store, severity or load_severity(), "open")
    return alert


def test_mixed_currencies_are_converted_into_the_reporting_currency_for_the_priority(store):
    # 3,000 EUR + 120,000 JPY was weighed as 123,000: a P2 at 45.0 instead of 37.4
    alert = _listed(store, {"EUR": 3000.0, "JPY": 120000.0})

    # 3,000 + 120,000 * 0.0062 = 3,744 EUR; anomaly 8/20, traffic log10(3)/4,
    # money log10(3745)/6: 100 * (0.16 + 0.0358 + 0.1787)
    assert alert["money_at_risk_reporting"] == 3744.0
    assert alert["reporting_currency"] == "EUR"
    assert alert["money_not_converted"] == []
    assert alert["priority"] == 37.4
    assert alert["money_text"] == "3,000.00 EUR + 120,000 JPY (mixed currencies) ≈ 3,744.00 EUR"
    assert alert["money_at_risk"] == 123000.0  # the old sum stays for its readers


def test_money_without_a_rate_or_a_currency_is_left_out_of_the_priority_and_named(store):
    severity = parse_severity(MONEY + "    JPY: 0.0062\n")

    alert = _listed(store, {"EUR": 3000.0, "CHF": 500.0, "": 12.5}, severity)

    assert alert["money_at_risk_reporting"] == 3000.0
    assert alert["money_not_converted"] == ["CHF", None]
    # as for 3,000 EUR alone; taking CHF and the unknown part as euros gave 38.2
    assert alert["priority"] == 37.9
    assert alert["money_text"] == (
        "500.00 CHF + 3,000.00 EUR + 12.50 in an unknown currency (mixed currencies) "
        "≈ 3,000.00 EUR (not converted: CHF, currency unknown)"
    )


def test_without_a_money_section_no_money_counts_in_the_priority(store):
    alert = _listed(store, {"EUR": 3000.0}, parse_severity(TIERS))

    assert alert["money_at_risk_reporting"] is None
    assert alert["reporting_currency"] is None
    assert alert["money_not_converted"] == ["EUR"]
    assert alert["priority"] == 18.3  # anomaly and traffic alone; the euros counted 35.6
    assert alert["money_text"] == "3,000.00 EUR (not converted: no reporting currency)"


def test_edited_rates_re_rank_stored_alerts(store):
    record_alert(store, "billing.invoice-post", datetime.now(UTC), None, {"JPY": 420000.0})
    ranked = {}
    for rate in ("0.0062", "0.01"):
        [alert] = list_alerts(store, parse_severity(MONEY + f"    JPY: {rate}\n"), "open")
        ranked[rate] = (alert["money_at_risk_reporting"], alert["priority"])

    assert ranked == {"0.0062": (2604.0, 35.3), "0.01": (4200.0, 36.4)}


def test_the_same_money_ranks_alike_in_any_reporting_currency_with_matching_full_weights(store):
    # a full weight of one million in every currency made 3,744 EUR a P2 when yen reported it
    record_alert(store, "billing.invoice-post", datetime.now(UTC), None, {"EUR": 3744.0})
    in_euros = TIERS + "money:\n  reporting_currency: EUR\n"
    in_yen = TIERS + (
        "money:\n  reporting_currency: JPY\n  rates: {EUR: 161.29}\n  full_weight_at: 161290000\n"
    )
    in_yen_at_a_million = TIERS + "money:\n  reporting_currency: JPY\n  rates: {EUR: 161.29}\n"

    ranked = [
        list_alerts(store, parse_severity(text), "open")[0]["priority"]
        for text in (in_euros, in_yen, in_yen_at_a_million)
    ]

    assert ranked == [36.1, 36.1, 47.2]


def test_a_full_weight_that_is_not_a_sum_above_one_is_refused():
    with pytest.raises(SeverityFileError) as refused:
        parse_severity(TIERS + "money:\n  reporting_currency: EUR\n  full_weight_at: 0\n")

    assert "line 6, field money.full_weight_at: Input should be greater than 1" in str(
        refused.value
    )


def test_a_currency_code_as_a_sender_wrote_it_is_converted_like_its_capitals():
    split = [("eur", 100.0), ("jpy", 1000.0), ("XYZ", 5.0)]

    assert convert(split, "EUR", {"JPY": 0.0062}) == Converted("EUR", 106.2, ("XYZ",))


def test_the_default_file_names_a_reporting_currency_and_example_rates():
    money = load_severity().model.money
    assert money is not None
    assert money.reporting_currency == "EUR"
    assert money.rates == {"USD": 0.92, "GBP": 1.17, "CHF": 1.05, "JPY": 0.0062}


def test_a_rate_of_one_for_the_reporting_currency_is_kept():
    # a rate table copied whole may list the reporting currency itself
    severity = parse_severity(MONEY + "    EUR: 1\n    USD: 0.92\n")

    assert severity.convert([("EUR", 10.0), ("USD", 10.0)]) == Converted("EUR", 19.2)


@pytest.mark.parametrize(
    ("money", "expected"),
    [
        (
            "money:\n  reporting_currency: eur\n",
            "line 5, field money.reporting_currency: a currency is its ISO 4217 code in three "
            "capital letters; write 'EUR' (got 'eur')",
        ),
        (
            "money:\n  reporting_currency: EURO\n",
            "line 5, field money.reporting_currency: a currency is its ISO 4217 code in three "
            "capital letters, such as EUR or USD (got 'EURO')",
        ),
        (
            "money:\n  reporting_currency: XYZ\n",
            "line 5, field money.reporting_currency: not an ISO 4217 currency code; check its "
            "spelling (got 'XYZ')",
        ),
        (
            "money:\n  reporting_currency: EUR\n  rates:\n    usd: 0.92\n",
            "line 7, field money.rates.usd: a currency is its ISO 4217 code in three capital "
            "letters; write 'USD' (got 'usd')",
        ),
        (
            "money:\n  reporting_currency: EUR\n  rates:\n    ABC: 0.92\n",
            # the field named the mapping, not the entry
            "line 7, field money.rates.ABC: not an ISO 4217 currency code; check its spelling "
            "(got 'ABC')",
        ),
        (
            "money:\n  reporting_currency: EUR\n  rates:\n    USD: 0\n",
            "line 7, field money.rates.USD: Input should be greater than 0 (got 0)",
        ),
        (
            "money:\n  reporting_currency: EUR\n  rates:\n    USD: -0.92\n",
            "line 7, field money.rates.USD: Input should be greater than 0 (got -0.92)",
        ),
        # taken as a reporting currency, though it names no money
        (
            "money:\n  reporting_currency: XXX\n",
            "line 5, field money.reporting_currency: XXX is ISO 4217's code for no currency, "
            "not money a business books (got 'XXX')",
        ),
        (
            "money:\n  reporting_currency: EUR\n  rates:\n    XTS: 1.5\n",
            "line 7, field money.rates.XTS: XTS is ISO 4217's code for testing, not money a "
            "business books (got 'XTS')",
        ),
        (
            "money:\n  reporting_currency: EUR\n  rates:\n    USD: true\n",
            "line 7, field money.rates.USD: Input should be a valid number (got true)",
        ),
        (
            "money:\n  reporting_currency: EUR\n  rates:\n    USD: '0.92'\n",
            "line 7, field money.rates.USD: Input should be a valid number, written without "
            "quotes (got '0.92')",
        ),
        (
            "money:\n  reporting_currency: EUR\n  rates:\n    JPY: 1e-3\n",
            "line 7, field money.rates.JPY: Input should be a valid number; YAML reads an "
            "exponent form as text unless it has a dot and a signed exponent: write 0.001 or "
            "1.0e-3 (got '1e-3')",
        ),
        (
            "money:\n  reporting_currency: EUR\n  rates:\n    EUR: 0.9\n",
            "line 7, field money.rates.EUR: EUR is the reporting currency, worth 1 EUR by "
            "definition (got 0.9); remove this rate, or write 1",
        ),
        (
            "money:\n  rates: {USD: 0.92}\n",
            "line 4, field money.reporting_currency: Field required",
        ),
        (
            "money:\n",
            "line 4, field money: the money section is empty; give reporting_currency (and "
            "rates), or remove it (got an empty value)",
        ),
        (
            "money: EUR\n",
            "line 4, field money: Input should be a mapping of money settings "
            "(reporting_currency, rates, full_weight_at) (got 'EUR')",
        ),
        (
            "money:\n  reporting_currency: EUR\n  currency: USD\n",
            "line 6, field money.currency: unknown key; check its spelling, or remove it "
            "(got 'USD')",
        ),
    ],
)
def test_a_bad_money_section_names_the_line_the_field_and_the_fix(money, expected):
    with pytest.raises(SeverityFileError) as caught:
        parse_severity(TIERS + money, "sev.yaml")

    assert str(caught.value).splitlines() == ["Invalid severity file:", f"  sev.yaml, {expected}"]


def test_an_exponent_yaml_reads_as_text_gets_the_hint_in_any_number_of_the_file():
    with pytest.raises(SeverityFileError) as caught:
        parse_severity("tiers:\n  medium: {weight: 5e-1}\n", "sev.yaml")

    assert str(caught.value).splitlines()[1] == (
        "  sev.yaml, line 2, field tiers.medium.weight: Input should be a valid number; YAML "
        "reads an exponent form as text unless it has a dot and a signed exponent: write 0.5 "
        "or 5.0e-1 (got '5e-1')"
    )
