"""A generic webhook: a documented JSON body, optionally signed with HMAC-SHA256.

The body (version 1; docs/notify.md shows a full one)::

    {"version": 1, "event": "opened", "at": "...", "test": false,
     "delivery_id": "...", "alert": {...}, "links": {"alert": "...", "lineage": "..."},
     "acknowledgement": {"by": "...", "at": "...", "note": "..."}}

``acknowledgement`` is null while nobody has acknowledged the alert.

Headers: ``X-Seamwatch-Event`` and ``X-Seamwatch-Delivery`` (the same id for every attempt,
so a receiver can drop repeats). With a secret, ``X-Seamwatch-Timestamp`` (Unix seconds) and
``X-Seamwatch-Signature: sha256=<hex>``, the HMAC-SHA256 of ``"<timestamp>." + body`` keyed
with the secret; a receiver recomputes it over the raw body and rejects old timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from detectors.alert_text import converted_fields
from notify.base import Destination, HttpRequest
from notify.message import Notification
from seamwatch.times import utc_text

PAYLOAD_VERSION = 1
SIGNATURE_HEADER = "X-Seamwatch-Signature"
TIMESTAMP_HEADER = "X-Seamwatch-Timestamp"


class WebhookDestination(Destination):
    """Posts the documented JSON body to any HTTP endpoint."""

    kind = "webhook"

    def request(self, notification: Notification) -> HttpRequest:
        body = self.payload(notification)
        headers = {
            "X-Seamwatch-Event": notification.event,
            "X-Seamwatch-Delivery": body["delivery_id"],
        }
        plain = HttpRequest(self.route.url.get_secret_value(), body, headers)
        if self.route.secret is None:
            return plain
        timestamp = str(int(time.time()))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(
            self.route.secret.get_secret_value(), timestamp, plain.content()
        )
        return HttpRequest(plain.url, body, headers)

    def payload(self, notification: Notification) -> dict[str, Any]:
        delivery = hashlib.sha256(f"{self.name}:{notification.delivery_key}".encode()).hexdigest()
        return {
            "version": PAYLOAD_VERSION,
            "event": notification.event,
            "at": utc_text(notification.at),
            "test": notification.test,
            "delivery_id": delivery[:32],
            "summary": notification.headline,
            "alert": alert_body(notification),
            "links": {"alert": notification.alert_url, "lineage": notification.lineage_url},
            "acknowledgement": notification.holder,
        }


def alert_body(notification: Notification) -> dict[str, Any]:
    """The ``alert`` object of the body: the alert's facts, as docs/notify.md lists them."""
    alert: dict[str, Any] = {
        "id": notification.alert_id,
        "flow": notification.flow,
        "target": notification.target,
        "business_object": notification.business_object,
        "kind": notification.kind,
        "kinds": list(notification.kinds),
        "tier": notification.tier,
        "priority": notification.priority,
        "priority_label": notification.priority_label,
        "score": notification.score,
        "affected_transactions": notification.affected,
        "money_at_risk": notification.money_at_risk,
        "currency": notification.currency,
        "money_by_currency": [
            {"currency": code or None, "amount": amount}
            for code, amount in notification.money_by_currency
        ],
        **converted_fields(notification.converted),
        "opened_at": utc_text(notification.opened_at),
        "resolved_at": utc_text(notification.resolved_at) if notification.resolved_at else None,
        "what_changed": notification.what_changed,
    }
    # left out when there is no error to quote, as documented, rather than sent as ""
    if notification.top_error:
        alert["top_error"] = notification.top_error
    return alert


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``"<timestamp>." + body`` keyed with ``secret``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"
