"""Google Chat: a webhook message with a ``cardsV2`` card, threaded per alert.

Each alert's messages share a thread: the webhook URL gets ``threadKey`` (the alert id) and
``messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD``, so escalations and the resolution
land under the opening message instead of as new posts.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from notify.base import Destination, HttpRequest
from notify.message import Notification


class GoogleChatDestination(Destination):
    """Posts card messages to a Google Chat space's incoming webhook."""

    kind = "google_chat"

    def request(self, notification: Notification) -> HttpRequest:
        parts = urlsplit(self.route.url.get_secret_value())
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        query["threadKey"] = f"seamwatch-{notification.alert_id}"
        query["messageReplyOption"] = "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
        url = urlunsplit(parts._replace(query=urlencode(query)))
        return HttpRequest(url, self.payload(notification))

    def payload(self, notification: Notification) -> dict[str, Any]:
        widgets: list[dict[str, Any]] = []
        if notification.what_changed:
            text = f"<b>What changed:</b> {_html(notification.what_changed)}"
            widgets.append({"textParagraph": {"text": text}})
        if notification.acknowledgement:
            text = f"<b>Acknowledged by:</b> {_html(notification.acknowledgement)}"
            widgets.append({"textParagraph": {"text": text}})
        widgets += [_fact(label, value) for label, value in notification.facts()]
        if notification.top_error:
            widgets.append(_fact("Top error", notification.top_error))
        buttons = [
            _button("Open alert", notification.alert_url),
            _button("Flow lineage", notification.lineage_url),
        ]
        widgets.append({"buttonList": {"buttons": buttons}})
        header = {
            "title": notification.headline,
            "subtitle": f"{notification.tier} tier, {notification.kind}",
        }
        card = {"header": header, "sections": [{"widgets": widgets}]}
        card_id = f"{notification.alert_id}-{notification.event}"
        return {"text": notification.headline, "cardsV2": [{"cardId": card_id, "card": card}]}


def _fact(label: str, value: str) -> dict[str, Any]:
    return {"decoratedText": {"topLabel": label, "text": _html(value), "wrapText": True}}


def _button(text: str, url: str) -> dict[str, Any]:
    return {"text": text, "onClick": {"openLink": {"url": url}}}


def _html(text: str) -> str:
    # Card text takes a small HTML subset; flow names and error texts are shown as written.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
