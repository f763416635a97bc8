"""What every destination shares: one HTTP POST per notification, and how its answer is judged.

Errors::

    DeliveryError               a notification could not be delivered
    ├── TransientDeliveryError  5xx, 429, 408, timeouts, refused connections: worth retrying;
    │                           carries the server's Retry-After in seconds when it gave one
    └── PermanentDeliveryError  any other 4xx: our payload or the address is wrong; not retried

Error messages never contain the destination's URL: the path and query of a chat webhook are
its credential. They name the destination and its host instead.
"""

from __future__ import annotations

import json
import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from notify.message import Notification
from notify.routing import Route

# Statuses a later attempt may get past: the server is busy, restarting or rate limiting.
RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_SHOWN_BODY_CHARS = 200


class _HideDestinationUrls(logging.Filter):
    """Shows destinations' URLs in httpx's request log lines as ``scheme://host/...``."""

    def __init__(self) -> None:
        super().__init__()
        self._prefixes: set[str] = set()
        self._lock = threading.Lock()

    def add(self, url: str) -> None:
        parts = urlsplit(url)
        with self._lock:
            self._prefixes.add(f"{parts.scheme}://{parts.netloc}")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and self._prefixes:
            record.args = tuple(self._hidden(arg) for arg in record.args)
        return True

    def _hidden(self, arg: object) -> object:
        if not isinstance(arg, httpx.URL | str):
            return arg
        text = str(arg)
        for prefix in self._prefixes:
            if text.startswith(prefix):
                return f"{urlsplit(text).scheme}://{urlsplit(text).hostname}/..."
        return arg


# httpx logs every request's full URL at INFO; a webhook's URL is its credential.
_url_filter = _HideDestinationUrls()
logging.getLogger("httpx").addFilter(_url_filter)


class DeliveryError(Exception):
    """A notification could not be delivered to a destination."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientDeliveryError(DeliveryError):
    """Delivery failed in a way that a later attempt may not."""

    def __init__(
        self, message: str, status: int | None = None, retry_after_seconds: float | None = None
    ) -> None:
        super().__init__(message, status)
        self.retry_after_seconds = retry_after_seconds


class PermanentDeliveryError(DeliveryError):
    """Delivery failed in a way that retrying cannot fix."""


@dataclass(frozen=True)
class HttpRequest:
    """One POST: the body is JSON; ``url`` is secret and must not be logged."""

    url: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        """The body as sent: compact JSON, UTF-8."""
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


class Destination(ABC):
    """A chat or alerting system that notifications are posted to."""

    kind: ClassVar[str]

    def __init__(self, route: Route) -> None:
        self.route = route
        self.name = route.name
        _url_filter.add(route.url.get_secret_value())

    @abstractmethod
    def payload(self, notification: Notification) -> Any:
        """The JSON body of the message for ``notification``."""

    def request(self, notification: Notification) -> HttpRequest:
        """The POST that delivers ``notification``."""
        return HttpRequest(self.route.url.get_secret_value(), self.payload(notification))

    def send(
        self, client: httpx.Client, request: HttpRequest, timeout_seconds: float | None = None
    ) -> int:
        """Post ``request`` once, waiting ``timeout_seconds`` (default: the destination's
        ``timeout_seconds``); return the HTTP status, or raise a :class:`DeliveryError`."""
        content = request.content()
        headers = {"Content-Type": "application/json", **request.headers}
        timeout = self.route.model.timeout_seconds if timeout_seconds is None else timeout_seconds
        try:
            response = client.post(request.url, content=content, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            raise TransientDeliveryError(
                f"{self.describe()} did not answer within {timeout:.3g}s"
            ) from None
        except httpx.TransportError as exc:
            # httpx's transport messages name the socket error, not the URL.
            raise TransientDeliveryError(
                f"{self.describe()} could not be reached ({type(exc).__name__}: {exc})"
            ) from None
        return self.judge(response)

    def judge(self, response: httpx.Response) -> int:
        """Accept 2xx; raise a transient or permanent error for anything else."""
        status = response.status_code
        if 200 <= status < 300:
            return status
        text = f"{self.describe()} answered HTTP {status}: {_short_body(response)}"
        if status in RETRIED_STATUSES:
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            raise TransientDeliveryError(text, status, retry_after)
        raise PermanentDeliveryError(text, status)

    def describe(self) -> str:
        """``destination 'finance-oncall' (slack at hooks.example.com)``: safe to log."""
        return f"destination {self.name!r} ({self.kind} at {self.route.host})"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header in seconds, whether given as seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _short_body(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    if len(text) > _SHOWN_BODY_CHARS:
        text = text[:_SHOWN_BODY_CHARS] + "..."
    return text or "(empty body)"
