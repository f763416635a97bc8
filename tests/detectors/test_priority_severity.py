"""Priority formula and severity rules, with exact values."""

from __future__ import annotations

import pytest

from detectors.priority import priority, priority_factors, priority_label
from detectors.severity import SeverityFileError, load_severity, parse_severity


def test_priority_combines_score_weight_traffic_and_money_exactly():
    # anomaly 10/20 = 0.5, traffic log10(100)/4 = 0.5, money log10(10000)/6 = 2/3
    assert priority(10.0, 1.0, 99, 9999) == 55.0
    assert priority(10.0, 0.4, 99, 9999) == 22.0


def test_priority_factors_saturate_at_one_and_ignore_negatives():
    factors = priority_factors(45.0, 1e9, 1e12)
    assert (factors.anomaly, factors.traffic, factors.money) == (1.0, 1.0, 1.0)
    assert priority(45.0, 1.0, 1e9, 1e12) == 100.0
    assert priority(-3.0, 1.0, -5, -1.0) == 0.0


@pytest.mark.parametrize(
    ("value", "label"),
    [(100.0, "P1"), (60.0, "P1"), (59.9, "P2"), (35.0, "P2"), (15.0, "P3"), (14.9, "P4")],
)
def test_priority_labels(value, label):
    assert priority_label(value) == label


@pytest.mark.parametrize(
    ("flow", "business_object", "tier"),
    [
        ("billing.invoice-post", "Invoice", "critical"),
        ("payments.payment-apply", "Payment", "critical"),
        ("order-to-cash.order-submit", "SalesOrder", "critical"),
        ("finance.revenue-schedule", "", "critical"),
        ("usage.usage-post", "UsageEvent", "high"),
        ("customer.onboarding", "CustomerAccount", "medium"),
        ("support.health-signal", "CustomerHealthSignal", "low"),
        ("unknown.flow", "", "medium"),
    ],
)
def test_default_file_puts_financial_objects_in_top_tiers(flow, business_object, tier):
    assert load_severity().tier_for(flow, business_object, "erp").name == tier


def test_first_matching_rule_wins_and_tier_carries_objectives():
    severity = parse_severity(
        "tiers:\n"
        "  critical: {weight: 1, latency_objective_ms: 1500, error_budget: 0.001}\n"
        "  low: {weight: 0.1}\n"
        "default_tier: low\n"
        "rules:\n"
        "  - {flow: 'billing.*', target: erp, tier: critical}\n"
        "  - {flow: 'billing.*', tier: low}\n"
    )
    tier = severity.tier_for("billing.invoice-post", "", "erp")
    assert (tier.name, tier.weight, tier.latency_objective_ms, tier.error_budget) == (
        "critical",
        1.0,
        1500.0,
        0.001,
    )
    assert severity.tier_for("billing.invoice-post", "", "crm").name == "low"


def test_validation_errors_name_the_line_and_the_field():
    text = "tiers:\n  critical:\n    weight: 2\nrules:\n  - flow: a\n    tier: urgent\n"
    with pytest.raises(SeverityFileError) as caught:
        parse_severity(text, "sev.yaml")
    message = str(caught.value)
    assert "sev.yaml, line 3, field tiers.critical.weight" in message
    assert "sev.yaml, line 6, field rules.0.tier" in message
    assert "'urgent'" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        # a list once named the model's internal class
        ("- a\n- b\n", "line 1: the file holds a list; it must be a mapping"),
        ("just words\n", "the file holds a single value"),
        ("tiers: [1,\n", "line 2: not valid YAML"),
        ("tiers:\n  high: {weight: 0.5}\n", "tier(s) medium are used but not defined"),
        ("tiers:\n  medium: {weight: 0.5}\nrules:\n  - tier: medium\n", "at least one of flow"),
        # a key given twice used to be taken silently, the last one winning
        (
            "default_tier: low\ntiers:\n  low: {weight: 0.1}\ndefault_tier: low\n",
            "line 4: 'default_tier' is given twice (first on line 1); keep one",
        ),
        (
            "tiers:\n  low: {weight: 0.1}\n  low: {weight: 0.2}\n",
            "line 3: 'low' is given twice (first on line 2)",
        ),
    ],
)
def test_bad_files_are_refused_with_a_sentence(text, expected):
    with pytest.raises(SeverityFileError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse_severity(text)


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(SeverityFileError, match="SEAMWATCH_SEVERITY_FILE"):
        load_severity(tmp_path / "missing.yaml")


def test_a_file_that_is_not_text_names_the_fix(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"tiers:\n\xff\xfe")
    with pytest.raises(SeverityFileError, match="not UTF-8 text.*SEAMWATCH_SEVERITY_FILE"):
        load_severity(path)


def test_an_edited_file_is_read_again(tmp_path):
    path = tmp_path / "sev.yaml"
    path.write_text("default_tier: low\ntiers:\n  low: {weight: 0.1}\n")
    assert load_severity(path).tier("low").weight == 0.1
    path.write_text("default_tier: low\ntiers:\n  low: {weight: 0.25}\n")
    assert load_severity(path).tier("low").weight == 0.25
