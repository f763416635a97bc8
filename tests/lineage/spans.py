"""Business transactions as exporter rows: a source publishes, middleware consumes and posts.

Each helper returns span descriptions for ``tests.rows.make_span_rows``; ids are derived from
the business key, so a test can name the traces it expects.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

START = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)


def trace_id(key: str, attempt: int) -> str:
    """The trace id of ``key``'s trace number ``attempt`` (0 is the source's own trace)."""
    return hashlib.sha256(f"{key}/{attempt}".encode()).hexdigest()[:32]


def span_id(key: str, attempt: int, position: int) -> str:
    """A span id unique to the key, trace and position in the trace."""
    return hashlib.sha256(f"{key}/{attempt}/{position}".encode()).hexdigest()[:16]


def business(key: str, flow: str = "billing.invoice-post", **extra: str) -> dict[str, str]:
    """The integration attributes every span of the transaction carries."""
    attributes = {
        "integration.flow": flow,
        "integration.pattern": "event",
        "integration.source": "billing",
        "integration.target": "erp",
        "business.object": "Invoice",
        "business.key": key,
        "correlation.id": f"corr-{key}",
        "business.amount": "1250.50",
        "business.currency": "EUR",
    }
    attributes.update(extra)
    return attributes


def published(key: str, at: datetime = START, **extra: str) -> list[dict[str, Any]]:
    """The source's trace: finalize the invoice and publish the event."""
    attrs = business(key, **extra)
    trace = trace_id(key, 0)
    return [
        {
            "TraceId": trace,
            "SpanId": span_id(key, 0, 0),
            "service": "billing",
            "name": "Invoice.finalize",
            "kind": "Internal",
            "attributes": {**attrs, "integration.stage": "publish"},
            "timestamp": at,
            "duration_ms": 60,
        },
        {
            "TraceId": trace,
            "SpanId": span_id(key, 0, 1),
            "ParentSpanId": span_id(key, 0, 0),
            "service": "billing",
            "name": "send billing.invoices",
            "kind": "Producer",
            "attributes": {
                **attrs,
                "integration.stage": "publish",
                "messaging.destination.name": "billing.invoices",
            },
            "timestamp": at + timedelta(milliseconds=50),
            "duration_ms": 4,
        },
    ]


def posted(
    key: str,
    attempt: int = 1,
    at: datetime = START + timedelta(seconds=2),
    failure: tuple[str, str] | None = None,
    consumer: bool = True,
    replay: bool = False,
    **extra: str,
) -> list[dict[str, Any]]:
    """A middleware trace that consumes (or replays) the event and posts it to the ERP.

    ``failure`` is ``(category, message)``: the ERP answers 422 and the client call fails.
    """
    attrs = business(key, **extra)
    if replay:
        attrs["integration.replay"] = "true"
    trace = trace_id(key, attempt)
    root = span_id(key, attempt, 0)
    client = span_id(key, attempt, 1)
    failed = {"integration.exception.category": failure[0]} if failure else {}
    status = "Error" if failure else "Unset"
    message = failure[1] if failure else ""
    links = {
        "Links.TraceId": [trace_id(key, 0)],
        "Links.SpanId": [span_id(key, 0, 1)],
        "Links.TraceState": [""],
        "Links.Attributes": [{}],
    }
    entry = {
        "TraceId": trace,
        "SpanId": root,
        "service": "integration-api",
        "name": "replay Invoice" if not consumer else "process erp.invoices",
        "kind": "Consumer" if consumer else "Internal",
        "attributes": {
            **attrs,
            "integration.stage": "receive",
            **({"messaging.destination.name": "erp.invoices"} if consumer else {}),
        },
        "timestamp": at,
        "duration_ms": 400,
        **links,
    }
    return [
        entry,
        {
            "TraceId": trace,
            "SpanId": client,
            "ParentSpanId": root,
            "service": "integration-api",
            "name": "POST /api/v1/arInvoices",
            "kind": "Client",
            "attributes": {
                **attrs,
                **failed,
                "integration.stage": "post",
                "peer.service": "erp",
            },
            "timestamp": at + timedelta(milliseconds=10),
            "duration_ms": 350,
            "status": status,
            "StatusMessage": message,
        },
        {
            "TraceId": trace,
            "SpanId": span_id(key, attempt, 2),
            "ParentSpanId": client,
            "service": "erp",
            "name": "POST /api/v1/arInvoices",
            "kind": "Server",
            "attributes": {**attrs, **failed, "integration.stage": "post"},
            "timestamp": at + timedelta(milliseconds=20),
            "duration_ms": 300,
        },
    ]
