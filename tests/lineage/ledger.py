"""A day of invoices and payments in euros, dollars and yen, and some that name no currency.

``ledger(start)`` gives the spans; the constants say what every reader of money must find in
them, amount by amount, never added across currencies. Every transaction starts in the first
ten minutes after ``start`` and the newest span is an hour later, so all are judged.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.lineage.spans import posted, published

INVOICES = "billing.invoice-post"
PAYMENTS = "payments.payment-apply"
MAPPING = ("mapping", "no ERP tax code for DE-RC-B2B")

# Revenue at risk of the invoice flow: what failed, was dropped or posted twice.
INVOICE_RISK = [
    {"currency": "EUR", "amount": 1250.5},
    {"currency": "JPY", "amount": 125000.0},
    {"currency": "USD", "amount": 99.99},
    {"currency": None, "amount": 100.0},
]
# The invoices that failed on a mapping, by currency.
MAPPING_AMOUNTS = [
    {"currency": "EUR", "amount": 1250.5},
    {"currency": "JPY", "amount": 5000.0},
    {"currency": "USD", "amount": 99.99},
    {"currency": None, "amount": 19.5},
]
MAPPING_TEXT = (
    "1,250.50 EUR + 5,000 JPY + 99.99 USD + 19.50 in an unknown currency (mixed currencies)"
)
# Adding every currency up, as the pages once did, gives neither of these.
MIXED_SUM = 1250.5 + 125000.0 + 99.99 + 100.0


def ledger(start: datetime) -> list[dict[str, Any]]:
    """The spans of the ledger's transactions, starting at ``start``."""
    at = [start + timedelta(minutes=minute) for minute in range(10)]
    spans = (
        _invoice("INV-E1", "EUR", "1250.50", at[0], failure=MAPPING)
        + _invoice("INV-E2", "EUR", "10.00", at[1])
        + _invoice("INV-U1", "USD", "99.99", at[2], failure=MAPPING)
        + _invoice("INV-J1", "JPY", "120000", at[3], attempts=2)
        + _invoice("INV-J2", "JPY", "5000", at[4], failure=MAPPING)
        + _invoice("INV-N1", None, "80.50", at[5], attempts=0)
        + _invoice("INV-N2", None, "19.50", at[6], failure=MAPPING)
        + _invoice("PAY-U1", "USD", "500.00", at[7], flow=PAYMENTS)
        # the newest span, an hour on: every transaction above is past its objective
        + _invoice("PAY-U2", "USD", "42.00", start + timedelta(hours=1), flow=PAYMENTS)
    )
    return spans


def _invoice(
    key: str,
    currency: str | None,
    amount: str,
    at: datetime,
    failure: tuple[str, str] | None = None,
    attempts: int = 1,
    flow: str = INVOICES,
) -> list[dict[str, Any]]:
    """Published, then posted ``attempts`` times (failing with ``failure``), in ``currency``;
    None leaves ``business.currency`` off every span."""
    extra = {"flow": flow, "business.amount": amount, "business.currency": currency or ""}
    spans = published(key, at=at, **extra)
    for attempt in range(1, attempts + 1):
        later = at + timedelta(seconds=2 + attempt)
        spans += posted(key, attempt=attempt, at=later, failure=failure, **extra)
    if currency is None:
        for span in spans:
            span["attributes"] = {
                name: value
                for name, value in span["attributes"].items()
                if name != "business.currency"
            }
    return spans
