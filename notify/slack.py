"""Slack: an incoming webhook message in Block Kit.

The body is ``{"text": ..., "blocks": [...]}``: ``text`` is the notification line Slack shows
in alerts and previews; the blocks are a header, what changed, who acknowledged the alert (if
anyone has), the facts as fields, the top error and two buttons (the alert and the flow's
lineage on the dashboard).
"""

from __future__ import annotations

from typing import Any

from notify.base import Destination
from notify.message import Notification

# Block Kit limits: a header's text, a section field's text and a section's text.
_HEADER_CHARS = 150
_FIELD_CHARS = 2000
_SECTION_CHARS = 3000
_MAX_FIELDS = 10


class SlackDestination(Destination):
    """Posts Block Kit messages to a Slack incoming webhook."""

    kind = "slack"

    def payload(self, notification: Notification) -> dict[str, Any]:
        facts = notification.facts()
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": notification.headline[:_HEADER_CHARS]},
            }
        ]
        if notification.what_changed:
            blocks.append(_section(f"*What changed:* {escape(notification.what_changed)}"))
        if notification.acknowledgement:
            blocks.append(_section(f"*Acknowledged by:* {escape(notification.acknowledgement)}"))
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{label}*\n{escape(value)}"[:_FIELD_CHARS]}
                    for label, value in facts[:_MAX_FIELDS]
                ],
            }
        )
        rest = [f"*{label}:* {escape(value)}" for label, value in facts[_MAX_FIELDS:]]
        if notification.top_error:
            rest.append(f"*Top error:* `{escape(notification.top_error)}`")
        if rest:
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "\n".join(rest)}]}
            )
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    _button("Open alert", notification.alert_url, "open_alert"),
                    _button("Flow lineage", notification.lineage_url, "open_lineage"),
                ],
            }
        )
        return {"text": notification.headline, "blocks": blocks}


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: only ``&``, ``<`` and ``>`` are special."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:_SECTION_CHARS]}}


def _button(label: str, url: str, action_id: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "url": url,
        "action_id": action_id,
    }
