"""Sensitive values never reach the store; look-alikes that fail their checksums do."""

from __future__ import annotations

import json

import httpx
import pytest

from collector.redaction import redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe@example.co.uk now", "mail [REDACTED:email] now"),
        ("card 4111 1111 1111 1111", "card [REDACTED:card]"),
        ("card 4111-1111-1111-1111", "card [REDACTED:card]"),
        ("order 4111111111111112", "order 4111111111111112"),
        ("iban DE89 3704 0044 0532 0130 00", "iban [REDACTED:iban]"),
        ("iban DE00 3704 0044 0532 0130 00", "iban DE00 3704 0044 0532 0130 00"),
        ("call +44 20 7946 0958", "call [REDACTED:phone]"),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x",
            "Authorization: Bearer [REDACTED:token]",
        ),
        ("SO-10492 for 12500.00 EUR", "SO-10492 for 12500.00 EUR"),
    ],
)
def test_patterns(text, expected):
    assert redact_text(text) == expected


def test_spans_are_redacted_before_they_are_stored(running_collector, store):
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "post payment",
        "attributes": [
            {"key": "customer.email", "value": {"stringValue": "ap@customer.example"}},
            {"key": "password", "value": {"stringValue": "hunter2"}},
            {"key": "business.key", "value": {"stringValue": "PAY-1"}},
        ],
        "events": [
            {
                "name": "log",
                "attributes": [{"key": "card", "value": {"stringValue": "4111111111111111"}}],
            }
        ],
        "status": {"code": 2, "message": "declined for ap@customer.example"},
    }
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    response = httpx.post(
        f"{running_collector.endpoint}/v1/traces",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    row = store.query_df(
        "SELECT SpanAttributes, Events.Attributes AS ea, StatusMessage "
        f"FROM {store.table('otel_traces')}"
    ).iloc[0]
    assert row["SpanAttributes"] == {
        "customer.email": "[REDACTED:email]",
        "password": "[REDACTED]",
        "business.key": "PAY-1",
    }
    assert list(row["ea"]) == [{"card": "[REDACTED:card]"}]
    assert row["StatusMessage"] == "declined for [REDACTED:email]"
