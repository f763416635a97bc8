"""The notification file: validation messages that name the line and field, secrets kept out."""

from __future__ import annotations

import pytest

from notify.routing import NotifyFileError, load_routes, parse_routes

GOOD = """\
destinations:
  - name: finance-oncall
    kind: slack
    url_env: FINANCE_SLACK_URL
    min_tier: high
    min_priority: P2
    flows: ["billing.*"]
  - name: am
    kind: alertmanager
    url: http://127.0.0.1:9093
"""


def _error(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(NotifyFileError) as caught:
        parse_routes(text, "notify.yaml", environ or {})
    return str(caught.value)


def test_a_good_file_reads_urls_from_the_environment():
    slack, am = parse_routes(
        GOOD, "notify.yaml", {"FINANCE_SLACK_URL": "https://chat.example.test/T/B/x"}
    )
    assert (slack.name, slack.kind, slack.host) == ("finance-oncall", "slack", "chat.example.test")
    assert slack.url.get_secret_value() == "https://chat.example.test/T/B/x"
    assert (am.kind, am.model.min_priority, am.model.events) == (
        "alertmanager",
        "P4",
        ["opened", "escalated", "resolved"],
    )


def test_an_alias_reuses_one_destination_s_flows_for_another():
    billing, finance = parse_routes(
        "destinations:\n"
        "  - {name: billing, kind: slack, url: http://127.0.0.1/a, flows: &money [billing.*]}\n"
        "  - {name: finance, kind: teams, url: http://127.0.0.1/b, flows: *money}\n",
        "notify.yaml",
        {},
    )
    assert billing.model.flows == finance.model.flows == ["billing.*"]


def test_a_destination_repeated_by_an_alias_is_reported_at_the_alias():
    # the name given twice was reported at the anchor's line, where it is given once
    message = _error(
        "destinations:\n"  # 1
        "  - &finance\n"  # 2
        "    name: finance\n"  # 3
        "    kind: slack\n"  # 4
        "    url: http://127.0.0.1/a\n"  # 5
        "  - {name: billing, kind: slack, url: http://127.0.0.1/b}\n"  # 6
        "  - *finance\n"  # 7
        "  - {<<: *finance, kind: teams}\n"  # 8
    )
    assert message.splitlines()[1:] == [
        "  notify.yaml, line 7, field destinations.2.name: destination name 'finance' is used "
        "twice",
        "  notify.yaml, line 8, field destinations.3.name: destination name 'finance' is used "
        "twice",
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "destinations:\n  - name: a\n    kind: pager\n    url: http://127.0.0.1/\n",
            "notify.yaml, line 3, field destinations.0.kind: Input should be 'slack', 'teams', "
            "'google_chat', 'webhook' or 'alertmanager' (got 'pager')",
        ),
        (
            "destinations:\n  - name: a\n    kind: slack\n    url: http://127.0.0.1/\n"
            "    min_priority: P0\n",
            "notify.yaml, line 5, field destinations.0.min_priority: Input should be 'P1', 'P2', "
            "'P3' or 'P4' (got 'P0')",
        ),
        (
            "destinations:\n  - name: a\n    kind: slack\n    url: http://127.0.0.1/\n"
            "    min_tier: urgent\n",
            "notify.yaml, line 5, field destinations.0.min_tier: Input should be 'critical', "
            "'high', 'medium' or 'low' (got 'urgent')",
        ),
        (
            "destinations:\n  - name: a\n    kind: slack\n    url: http://127.0.0.1/\n"
            "    colour: red\n",
            "notify.yaml, line 5, field destinations.0.colour: unknown key; check its spelling, "
            "or remove it",
        ),
        (
            "destinations:\n  - name: a\n    kind: slack\n",
            "notify.yaml, line 2, field destinations.0: give exactly one of url or url_env",
        ),
        (
            "destinations:\n  - name: a\n    kind: slack\n    url: http://127.0.0.1/\n"
            "  - name: a\n    kind: teams\n    url: http://127.0.0.1/\n",
            "notify.yaml, line 5, field destinations.1.name: destination name 'a' is used twice",
        ),
        (
            # pydantic's words named the regular expression the name breaks
            "destinations:\n  - name: finance oncall\n    kind: slack\n"
            "    url: http://127.0.0.1/\n",
            "notify.yaml, line 2, field destinations.0.name: a destination name may hold only "
            "letters (A-Z, a-z), digits, '_', '.' and '-', not ' ' (got 'finance oncall')",
        ),
        ("destinations: [\n", "notify.yaml, line 2: not valid YAML"),
        ("", "notify.yaml: the file is empty"),
    ],
)
def test_bad_files_are_named_by_line_and_field(text, expected):
    assert expected in _error(text)


def test_a_bad_url_is_refused_without_being_quoted():
    message = _error(
        "destinations:\n  - name: a\n    kind: slack\n    url: ftp://host/T123/secret-token\n"
    )
    assert "line 4, field destinations.0.url" in message and "http:// or https://" in message
    assert "secret-token" not in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        # 99999 was accepted and the alert delivered to port 34463, where it wraps round to
        ("http://127.0.0.1:99999/hook", "its port must be a number from 1 to 65535 (got '99999')"),
        ("http://127.0.0.1:0/hook", "its port must be a number from 1 to 65535 (got '0')"),
        ("http://[::1]:abc/hook", "its port must be a number from 1 to 65535 (got 'abc')"),
        ("http://exa mple.com/hook", "host 'exa mple.com' is not a host name or an IP address"),
    ],
)
def test_a_url_no_server_can_answer_at_is_refused(url, problem):
    message = _error(f"destinations:\n  - name: a\n    kind: webhook\n    url: '{url}'\n")
    assert f"field destinations.0.url: the url cannot be reached: {problem}" in message


def test_every_problem_of_the_file_comes_in_one_report():
    # a name given twice and a url that is no address showed only once the file's other
    # mistakes were fixed, one round each
    message = _error(
        "destinations:\n"
        "  - name: a\n    kind: slack\n    url: not a url\n    min_tier: urgent\n"
        "  - name: a\n    kind: teams\n    url: http://127.0.0.1/\n"
    )
    assert message.splitlines()[1:] == [
        "  notify.yaml, line 4, field destinations.0.url: the url must be an http:// or "
        "https:// address with a host",
        "  notify.yaml, line 5, field destinations.0.min_tier: Input should be 'critical', "
        "'high', 'medium' or 'low' (got 'urgent')",
        "  notify.yaml, line 6, field destinations.1.name: destination name 'a' is used twice",
    ]


def test_a_destination_s_field_error_does_not_hide_where_its_url_and_secret_come_from():
    # url with url_env beside a bad timeout, and a webhook without url whose secret was given
    # twice, showed one problem each, the rest only after it was fixed
    message = _error(
        "destinations:\n"
        "  - name: a\n    kind: slack\n    url: http://127.0.0.1/\n    url_env: A_URL\n"
        "    timeout_seconds: 0\n"
        "  - name: b\n    kind: webhook\n    secret: s\n    secret_env: B_SECRET\n"
    )
    assert message.splitlines()[1:] == [
        "  notify.yaml, line 2, field destinations.0: give exactly one of url or url_env",
        "  notify.yaml, line 6, field destinations.0.timeout_seconds: Input should be greater "
        "than 0 (got 0)",
        "  notify.yaml, line 7, field destinations.1: give exactly one of url or url_env",
        "  notify.yaml, line 7, field destinations.1: give at most one of secret or secret_env",
    ]


def test_a_missing_environment_variable_is_named():
    message = _error(GOOD)
    assert message == (
        "Invalid notification file:\n"
        "  notify.yaml, line 4, field destinations.0.url_env: url_env names 'FINANCE_SLACK_URL', "
        "which is not set in the environment; set it to the destination's URL"
    )


def test_every_variable_problem_comes_with_the_file_s_other_mistakes():
    # one variable was reported per run, after every other mistake was fixed; an empty one
    # was called not set, and a url that could not be parsed read "Invalid IPv6 URL" alone
    message = _error(
        "destinations:\n"
        "  - name: a\n    kind: slack\n    url_env: A_URL\n    min_tier: urgent\n"
        "  - name: b\n    kind: webhook\n    url_env: B_URL\n    secret_env: B_SECRET\n"
        "  - name: c\n    kind: teams\n    url_env: C_URL\n"
        "  - name: d\n    kind: teams\n    url: 'http://[abc/'\n",
        {"B_URL": "", "B_SECRET": "", "C_URL": "https://[fe80::1/x"},
    )
    advice = "write it as http:// or https:// and a host, with any IPv6 address in brackets"
    assert message.splitlines()[1:] == [
        "  notify.yaml, line 4, field destinations.0.url_env: url_env names 'A_URL', which is "
        "not set in the environment; set it to the destination's URL",
        "  notify.yaml, line 5, field destinations.0.min_tier: Input should be 'critical', "
        "'high', 'medium' or 'low' (got 'urgent')",
        "  notify.yaml, line 8, field destinations.1.url_env: url_env names 'B_URL', which is "
        "set but empty; set it to the destination's URL",
        "  notify.yaml, line 9, field destinations.1.secret_env: secret_env names 'B_SECRET', "
        "which is set but empty; set it to the signing secret",
        "  notify.yaml, line 12, field destinations.2.url_env: the URL in C_URL cannot be read "
        f"as an address (Invalid IPv6 URL); {advice}",
        "  notify.yaml, line 15, field destinations.3.url: the url cannot be read as an address "
        f"(Invalid IPv6 URL); {advice}",
    ]
    assert "fe80" not in message and "abc" not in message


def test_only_webhooks_take_a_signing_secret():
    message = _error(
        "destinations:\n  - name: a\n    kind: slack\n    url: http://127.0.0.1/\n    secret: x\n"
    )
    assert "secret and secret_env sign generic webhooks only" in message


def test_no_file_means_no_destinations_and_an_unreadable_one_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("SEAMWATCH_NOTIFY_FILE", raising=False)
    assert load_routes(None) == []
    with pytest.raises(
        NotifyFileError, match="Pass --notify-file FILE or set SEAMWATCH_NOTIFY_FILE"
    ):
        load_routes(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("[abc", "the '[' at position 1 opens a set of characters that is never closed"),
        ("  ", "the pattern is blank"),
    ],
)
def test_a_flow_pattern_that_could_never_match_is_refused(pattern, expected):
    message = _error(
        "destinations:\n  - name: a\n    kind: slack\n    url: http://127.0.0.1/\n"
        f'    flows: ["billing.*", "{pattern}"]\n'
    )
    assert "notify.yaml, line 5, field destinations.0.flows.1: " in message
    assert expected in message


def test_an_empty_flows_list_is_refused_rather_than_read_as_every_flow():
    message = _error(
        "destinations:\n  - name: a\n    kind: slack\n    url: http://127.0.0.1/\n    flows: []\n"
    )
    assert "notify.yaml, line 5, field destinations.0.flows: " in message
    assert "an empty list matches no flow; leave flows out for every flow" in message


def test_an_empty_events_list_is_refused_as_a_destination_that_would_get_nothing():
    message = _error(
        "destinations:\n  - name: a\n    kind: slack\n    url: http://127.0.0.1/\n    events: []\n"
    )
    assert "notify.yaml, line 5, field destinations.0.events: " in message
    assert "an empty list sends nothing; leave events out for every event" in message


@pytest.mark.parametrize("field", ["timeout_seconds", "resend_interval_seconds"])
def test_a_nan_duration_is_called_not_a_number(field):
    # it passed as "not greater than" the bound, and was refused as above it
    message = _error(
        "destinations:\n  - name: a\n    kind: alertmanager\n    url: http://127.0.0.1/\n"
        f"    {field}: .nan\n"
    )
    assert message.splitlines()[1:] == [
        f"  notify.yaml, line 5, field destinations.0.{field}: Input should be a number, not NaN "
        "(got .nan)"
    ]


@pytest.mark.parametrize("field", ["timeout_seconds", "resend_interval_seconds"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"5"', "Input should be a valid number, written without quotes (got '5')"),
        ("true", "Input should be a valid number (got true)"),
    ],
)
def test_a_duration_must_be_a_yaml_number_as_in_the_severity_file(field, value, expected):
    # a quoted "5" was taken as 5 here, and refused in the severity file
    message = _error(
        "destinations:\n  - name: a\n    kind: alertmanager\n    url: http://127.0.0.1/\n"
        f"    {field}: {value}\n"
    )
    assert message.splitlines()[1:] == [
        f"  notify.yaml, line 5, field destinations.0.{field}: {expected}"
    ]


@pytest.mark.parametrize("kind", ["slack", "teams", "google_chat", "webhook"])
def test_a_resend_interval_is_refused_for_a_kind_that_never_resends(kind):
    # it was accepted and did nothing: only Alertmanager is posted again while firing
    message = _error(
        f"destinations:\n  - name: a\n    kind: {kind}\n    url: http://127.0.0.1/\n"
        "    resend_interval_seconds: 30\n"
    )
    assert message.splitlines()[1:] == [
        "  notify.yaml, line 5, field destinations.0.resend_interval_seconds: only alertmanager "
        f"destinations resend firing alerts; remove it from this {kind} destination"
    ]
