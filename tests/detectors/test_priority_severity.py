"""Priority formula and severity rules, with exact values."""

from __future__ import annotations

import pytest

from detectors.priority import priority, priority_factors, priority_label
from detectors.severity import SeverityFileError, Tier, load_severity, parse_severity


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


def test_an_alias_reuses_one_tier_s_settings_for_another():
    severity = parse_severity(
        "tiers:\n"
        "  critical: &strict {weight: 1, latency_objective_ms: 1500, error_budget: 0.001}\n"
        "  high: *strict\n"
        "default_tier: high\n"
    )
    assert severity.tier("high") == Tier("high", 1.0, 1500.0, 0.001)
    assert severity.tier_for("any.flow").name == "high"


def test_a_merge_key_takes_a_tier_s_settings_and_changes_one():
    # '<<' was reported as an unknown setting of the tier
    severity = parse_severity(
        "tiers:\n"
        "  critical: &strict {weight: 1, latency_objective_ms: 1500, error_budget: 0.001}\n"
        "  high:\n"
        "    <<: *strict\n"
        "    weight: 0.6\n"
        "default_tier: high\n"
    )
    assert severity.tier("high") == Tier("high", 0.6, 1500.0, 0.001)
    assert severity.tier("critical") == Tier("critical", 1.0, 1500.0, 0.001)


def test_a_rule_repeated_by_an_alias_is_reported_at_the_alias():
    # it was reported at the anchor's line, as "the same patterns as the rule on" that line
    text = (
        "tiers:\n  critical: {weight: 1}\n  low: {weight: 0.1}\ndefault_tier: low\n"
        "rules:\n"  # 5
        "  - &billing {flow: 'billing.*', tier: critical}\n"  # 6
        "  - {flow: 'usage.*', tier: low}\n"  # 7
        "  - *billing\n"  # 8
    )
    with pytest.raises(SeverityFileError) as caught:
        parse_severity(text, "sev.yaml")
    assert str(caught.value).splitlines()[1:] == [
        "  sev.yaml, line 8, field rules.2: the same patterns as the rule on line 6, which "
        "comes first and wins, so this rule never applies; remove one of them",
    ]


def test_a_merge_key_of_a_list_of_values_names_its_line():
    text = "tiers:\n  critical: {weight: 1}\n  high:\n    <<: [1, 2]\n    weight: 0.5\n"
    with pytest.raises(SeverityFileError) as caught:
        parse_severity(text, "sev.yaml")
    assert "sev.yaml, line 4" in str(caught.value)
    assert "'<<' merges a mapping into this one" in str(caught.value)


def test_a_merge_key_given_twice_is_refused_like_any_key_given_twice():
    # the second merge was dropped in silence
    text = (
        "tiers:\n  critical: &c {weight: 1}\n  low: &l {weight: 0.1}\n"
        "  high:\n    <<: *c\n    <<: *l\n"
    )
    with pytest.raises(SeverityFileError) as caught:
        parse_severity(text, "sev.yaml")
    assert "sev.yaml, line 6" in str(caught.value)
    assert "'<<' is given twice (first on line 5); merge a list: <<: [*a, *b]" in str(caught.value)


def test_validation_errors_name_the_line_and_the_field():
    text = "tiers:\n  critical:\n    weight: 2\nrules:\n  - flow: a\n    tier: urgent\n"
    with pytest.raises(SeverityFileError) as caught:
        parse_severity(text, "sev.yaml")
    message = str(caught.value)
    assert "sev.yaml, line 3, field tiers.critical.weight" in message
    assert "sev.yaml, line 6, field rules.0.tier" in message
    assert "'urgent'" in message


def test_a_rule_s_bad_pattern_does_not_hide_its_undefined_tier():
    # only the unclosed '[' was reported; the undefined tier came a round later
    text = (
        "tiers:\n  critical: {weight: 1}\ndefault_tier: critical\n"
        "rules:\n  - {flow: '[abc', tier: low}\n"
    )
    with pytest.raises(SeverityFileError) as caught:
        parse_severity(text, "sev.yaml")
    problems = str(caught.value).splitlines()[1:]
    assert len(problems) == 2
    assert problems[0].startswith("  sev.yaml, line 5, field rules.0.flow")
    assert problems[1] == (
        "  sev.yaml, line 5, field rules.0.tier: tier 'low' is not defined under tiers; define "
        "it or use one of critical"
    )


def test_every_problem_of_the_file_is_in_one_report():
    # the duplicate rule, and the rule's undefined tier, showed only once the weight was fixed;
    # the key given twice hid everything else
    text = (
        "tiers:\n"  # 1
        "  critical: {weight: 2}\n"  # 2
        "  low: {weight: 0.1}\n"  # 3
        "default_tier: low\n"  # 4
        "rules:\n"  # 5
        "  - {flow: 'billing.*', tier: critical}\n"  # 6
        "  - {flow: 'usage.*', tier: high}\n"  # 7
        "  - {flow: 'billing.*', tier: low}\n"  # 8
        "  - {flow: 'crm.*', tier: urgent}\n"  # 9
        "default_tier: critical\n"  # 10
    )
    with pytest.raises(SeverityFileError) as caught:
        parse_severity(text, "sev.yaml")
    assert str(caught.value).splitlines() == [
        "Invalid severity file:",
        "  sev.yaml, line 2, field tiers.critical.weight: Input should be less than or equal "
        "to 1 (got 2)",
        "  sev.yaml, line 7, field rules.1.tier: tier 'high' is not defined under tiers; define "
        "it or use one of critical, low",
        "  sev.yaml, line 8, field rules.2: the same patterns as the rule on line 6, which "
        "comes first and wins, so this rule never applies; remove one of them",
        "  sev.yaml, line 9, field rules.3.tier: Input should be 'critical', 'high', 'medium' "
        "or 'low' (got 'urgent')",
        "  sev.yaml, line 10, field default_tier: 'default_tier' is given twice (first on line "
        "4); keep one",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        # a list once named the model's internal class
        ("- a\n- b\n", "line 1: the file holds a list; it must be a mapping"),
        ("just words\n", "the file holds a single value"),
        ("tiers: [1,\n", "line 2: not valid YAML"),
        (
            "tiers:\n  high: {weight: 0.5}\n",
            "line 1, field default_tier: default tier 'medium' (when none is given) is not "
            "defined under tiers; define it or set default_tier to one of high",
        ),
        ("tiers:\n  medium: {weight: 0.5}\nrules:\n  - tier: medium\n", "at least one of flow"),
        # a key given twice used to be taken silently, the last one winning
        (
            "default_tier: low\ntiers:\n  low: {weight: 0.1}\ndefault_tier: low\n",
            "line 4, field default_tier: 'default_tier' is given twice (first on line 1); keep one",
        ),
        # a list as a key raised TypeError (unhashable type: 'list')
        (
            "? [a, b]\n: 1\ntiers: {medium: {weight: 0.5}}\n",
            "line 1: a key is a list or a mapping; a key must be a name",
        ),
        (
            "tiers:\n  low: {weight: 0.1}\n  low: {weight: 0.2}\n",
            "line 3, field tiers.low: 'low' is given twice (first on line 2); keep one",
        ),
    ],
)
def test_bad_files_are_refused_with_a_sentence(text, expected):
    with pytest.raises(SeverityFileError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse_severity(text)


def test_a_missing_file_given_by_option_names_the_option(tmp_path):
    with pytest.raises(SeverityFileError, match="Check --severity: it must name a readable"):
        load_severity(tmp_path / "missing.yaml", option="--severity")


def test_a_missing_file_from_the_variable_names_only_what_the_command_takes(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAMWATCH_SEVERITY_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(SeverityFileError) as without_option:
        load_severity()
    assert "Set SEAMWATCH_SEVERITY_FILE to a readable severity file, or unset it" in str(
        without_option.value
    )
    assert "--severity" not in str(without_option.value)
    with pytest.raises(SeverityFileError, match="or pass --severity FILE"):
        load_severity(option="--severity")


def test_a_file_that_is_not_text_names_the_fix(tmp_path, monkeypatch):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"tiers:\n\xff\xfe")
    monkeypatch.setenv("SEAMWATCH_SEVERITY_FILE", str(path))
    with pytest.raises(SeverityFileError, match="not UTF-8 text.*SEAMWATCH_SEVERITY_FILE"):
        load_severity()


def test_an_edited_file_is_read_again(tmp_path):
    path = tmp_path / "sev.yaml"
    path.write_text("default_tier: low\ntiers:\n  low: {weight: 0.1}\n")
    assert load_severity(path).tier("low").weight == 0.1
    path.write_text("default_tier: low\ntiers:\n  low: {weight: 0.25}\n")
    assert load_severity(path).tier("low").weight == 0.25


TIERS = "tiers:\n  low: {weight: 0.2}\n  high: {weight: 0.7}\ndefault_tier: low\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a boolean and a quoted number were taken as 1.0 and 0.2
        (
            "tiers:\n  low: {weight: true}\ndefault_tier: low\n",
            "line 2, field tiers.low.weight: Input should be a valid number (got true)",
        ),
        (
            'tiers:\n  low: {weight: "0.2"}\ndefault_tier: low\n',
            "line 2, field tiers.low.weight: Input should be a valid number, written without "
            "quotes (got '0.2')",
        ),
        (
            "tiers:\n  low: {weight: 0.2, latency_objective_ms: '500'}\ndefault_tier: low\n",
            "line 2, field tiers.low.latency_objective_ms: Input should be a valid number",
        ),
        (
            "tiers:\n  low: {weight: 0.2, error_budget: .nan}\ndefault_tier: low\n",
            "line 2, field tiers.low.error_budget: Input should be a number, not NaN",
        ),
        # a percentage was told to be "written without quotes", though it had none
        (
            "tiers:\n  low: {weight: 0.2, error_budget: 10%}\ndefault_tier: low\n",
            "line 2, field tiers.low.error_budget: Input should be a valid number; write a "
            "percentage as a fraction: 0.1 for 10% (got '10%')",
        ),
        # an objective without a budget to spend was never judged, without a word
        (
            "tiers:\n  low: {weight: 0.2, latency_objective_ms: 500}\ndefault_tier: low\n",
            "line 2, field tiers.low.latency_objective_ms: a latency objective is judged "
            "against the tier's error budget (calls slower than it spend the budget), and this "
            "tier has none; add error_budget (e.g. 0.01 for 1 %) or remove latency_objective_ms",
        ),
        # empty, blank and unclosed patterns were taken, and could never match as meant
        (
            TIERS + "rules:\n  - {flow: '', tier: high}\n",
            "line 6, field rules.0.flow: the pattern is empty; give one, or leave the field out",
        ),
        (
            TIERS + "rules:\n  - {flow: 'billing.*', tier: high}\n  - {flow: '   ', tier: low}\n",
            "line 7, field rules.1.flow: the pattern is blank",
        ),
        (
            TIERS + "rules:\n  - {flow: '[', tier: high}\n",
            "line 6, field rules.0.flow: the '[' at position 1 opens a set of characters that "
            "is never closed with ']'; close it, or write [[] for a literal '['",
        ),
        (
            TIERS + "rules:\n  - {business_object: 'Invoice[!]', tier: high}\n",
            "line 6, field rules.0.business_object: the '[' at position 8 opens a set",
        ),
        # a second rule with the same patterns never matched, silently
        (
            TIERS + "rules:\n  - flow: 'billing.*'\n    tier: high\n"
            "  - {flow: 'crm.*', tier: low}\n  - {flow: 'billing.*', tier: low}\n",
            "line 9, field rules.2: the same patterns as the rule on line 6, which comes first "
            "and wins, so this rule never applies; remove one of them",
        ),
        # an undefined tier was reported at line 1
        (
            TIERS + "rules:\n  - {flow: a, tier: low}\n  - {flow: b, tier: critical}\n",
            "line 7, field rules.1.tier: tier 'critical' is not defined under tiers; define it "
            "or use one of high, low",
        ),
        # an unknown tier name read "field tiers.urgent.[key]", then "field tiers"
        (
            "tiers:\n  low: {weight: 0.2}\n  urgent: {weight: 1}\ndefault_tier: low\n",
            "line 3, field tiers.urgent: unknown tier 'urgent'; use one of critical, high, "
            "medium, low",
        ),
        # a list where a number or a tier name belongs was reported without what was given
        (
            "tiers:\n  low: {weight: 0.2, error_budget: [1]}\ndefault_tier: low\n",
            "line 2, field tiers.low.error_budget: Input should be a valid number "
            "(got a list: [1])",
        ),
        (
            "tiers:\n  critical: {weight: 1}\ndefault_tier: [critical]\n",
            "line 3, field default_tier: Input should be 'critical', 'high', 'medium' or 'low' "
            "(got a list: [critical])",
        ),
        # a tier or rule that is no mapping named the code's classes
        (
            "tiers:\n  low: 5\ndefault_tier: low\n",
            "line 2, field tiers.low: Input should be a mapping of tier settings (weight, "
            "latency_objective_ms, error_budget) (got 5)",
        ),
        (
            TIERS + "rules:\n  - [billing.*, high]\n",
            "line 6, field rules.0: Input should be a mapping of rule fields (flow, "
            "business_object, target, tier) (got a list: [billing.*, high])",
        ),
        (
            "tiers: [low]\n",
            "line 1, field tiers: Input should be a mapping of keys to values (got a list: [low])",
        ),
        (
            "tiers:\n  low: {weight: 0.2, colour: red}\ndefault_tier: low\n",
            "line 2, field tiers.low.colour: unknown key; check its spelling, or remove it "
            "(got 'red')",
        ),
        (
            "tiers:\n  low: {weight: {a: 1}}\ndefault_tier: low\n",
            "line 2, field tiers.low.weight: Input should be a valid number "
            "(got a mapping with keys a)",
        ),
        (
            "tiers:\n  low:\ndefault_tier: low\n",
            "line 2, field tiers.low: Input should be a mapping of tier settings (weight, "
            "latency_objective_ms, error_budget) (got an empty value)",
        ),
        # PyYAML's wording alone gave no clue what to look at
        (
            "tiers:\n  low: {weight: 0.2}\n default_tier: low\n",
            "line 3: not valid YAML: expected <block end>, but found '<block mapping start>'; "
            "check the indentation there and that every quote and bracket is closed",
        ),
    ],
)
def test_mistakes_a_valid_looking_file_made_are_refused_where_they_are(text, expected):
    with pytest.raises(SeverityFileError) as caught:
        parse_severity(text, "sev.yaml")
    assert f"sev.yaml, {expected}" in str(caught.value)
    # what the file gave, in its own words: never the code's class names
    assert "Model" not in str(caught.value) and "dictionary" not in str(caught.value)


@pytest.mark.parametrize("pattern", ["[[]x", "a[]]b", "[!]]", "billing.[ab]*", "*"])
def test_closed_sets_and_a_literal_bracket_are_good_globs(pattern):
    text = TIERS + f"rules:\n  - {{flow: '{pattern}', tier: high}}\n"
    assert parse_severity(text).model.rules[0].flow == pattern


def test_the_same_pattern_on_other_fields_is_another_match():
    text = (
        TIERS + "rules:\n  - {flow: 'a*', tier: high}\n  - {flow: 'a*', target: erp, tier: low}\n"
    )
    assert parse_severity(text).tier_for("ab", "", "erp").name == "high"


def test_a_long_value_is_quoted_cut_short():
    with pytest.raises(SeverityFileError) as refused:
        parse_severity(f"tiers:\n  low: {{weight: 0.2}}\ndefault_tier: {'x' * 5000}\n", "s")
    assert "(got 'xxx" in str(refused.value) and len(str(refused.value)) < 300


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_file_is_named_as_such_with_how_to_save_it(tmp_path, encoding):
    path = tmp_path / "sev.yaml"
    path.write_text("tiers:\n  low: {weight: 0.2}\ndefault_tier: low\n", encoding=encoding)
    with pytest.raises(SeverityFileError) as refused:
        load_severity(path, option="--severity")
    assert f"{path}': it is UTF-16 text, not UTF-8; save it as UTF-8" in str(refused.value)
