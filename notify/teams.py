"""Microsoft Teams: an Adaptive Card posted to a Workflows (or incoming) webhook.

Teams' Workflows webhooks take the same envelope as the retired Office 365 connectors: a
``message`` with one attachment whose content is the card. The card holds the headline in the
priority's colour, what changed, who acknowledged the alert (if anyone has), the facts as a
FactSet, the top error and two links.
"""

from __future__ import annotations

from typing import Any

from notify.base import Destination
from notify.message import RESOLVED, Notification

ADAPTIVE_CARD_TYPE = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
# Version 1.4 renders in Teams desktop, web and mobile.
ADAPTIVE_CARD_VERSION = "1.4"
_COLOURS = {"P1": "Attention", "P2": "Warning", "P3": "Accent", "P4": "Default"}


class TeamsDestination(Destination):
    """Posts Adaptive Cards to a Teams Workflows webhook."""

    kind = "teams"

    def payload(self, notification: Notification) -> dict[str, Any]:
        colour = "Good" if notification.event == RESOLVED else _COLOURS[notification.priority_label]
        body: list[dict[str, Any]] = [
            {
                "type": "TextBlock",
                "text": notification.headline,
                "weight": "Bolder",
                "size": "Medium",
                "color": colour,
                "wrap": True,
            }
        ]
        if notification.what_changed:
            body.append({"type": "TextBlock", "text": notification.what_changed, "wrap": True})
        if notification.acknowledgement:
            text = f"Acknowledged by {notification.acknowledgement}"
            body.append({"type": "TextBlock", "text": text, "wrap": True})
        body.append(
            {
                "type": "FactSet",
                "facts": [
                    {"title": label, "value": value} for label, value in notification.facts()
                ],
            }
        )
        if notification.top_error:
            body.append(
                {
                    "type": "TextBlock",
                    "text": f"Top error: {notification.top_error}",
                    "wrap": True,
                    "fontType": "Monospace",
                    "isSubtle": True,
                }
            )
        card = {
            "$schema": ADAPTIVE_CARD_SCHEMA,
            "type": "AdaptiveCard",
            "version": ADAPTIVE_CARD_VERSION,
            "body": body,
            "actions": [
                {"type": "Action.OpenUrl", "title": "Open alert", "url": notification.alert_url},
                {
                    "type": "Action.OpenUrl",
                    "title": "Flow lineage",
                    "url": notification.lineage_url,
                },
            ],
        }
        return {
            "type": "message",
            "attachments": [
                {"contentType": ADAPTIVE_CARD_TYPE, "contentUrl": None, "content": card}
            ],
        }
