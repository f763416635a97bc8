"""Limits on the bodies of requests to the JSON API: their size and the time they take to arrive.

uvicorn limits neither, and the API's changes (acknowledge, silence, cancel) read their whole
body before looking at it, so a client could make the process hold a body of any size, or
wait for one for ever. The API's bodies are small JSON objects: a silence with its patterns and
reason is a few hundred bytes, so ``MAX_API_BODY_BYTES`` (64 KiB) leaves room for long notes
while a request costs little memory; a body over it is refused with 413, at once when its
Content-Length says so. A body that stops arriving for the body timeout
(``SEAMWATCH_BODY_TIMEOUT_SECONDS``, the trace receiver's setting) gets 408. Both answers are
the API's ``{"error": ...}`` and close the connection: the rest of the body is not worth
reading, and may never come. The limits are kept as the trace receiver keeps its own
(``seamwatch.body_limits``); only the answers are the API's.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import Message, Receive

from seamwatch.body_limits import BodyLimits

# The same as a request head's limit (collector.http_protocol.MAX_HEAD_BYTES).
MAX_API_BODY_BYTES = 64 * 1024


class BodyRefused(Exception):
    """A request body broke a limit while the application read it; ``response`` says which."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.body.decode())
        self.response = response


class _ApiRefusals:
    """The API's answers to a body over its limits (:class:`seamwatch.body_limits.BodyRefusals`):
    ``{"error": ...}``, closing the connection."""

    def declared_too_large(self, declared_bytes: int, limit_bytes: int) -> BodyRefused:
        """413 from the Content-Length."""
        return _closing(
            413,
            f"The request body of {declared_bytes} bytes (its Content-Length) is larger than "
            f"the API takes ({limit_bytes} bytes); send a smaller body.",
        )

    def too_large(self, limit_bytes: int) -> BodyRefused:
        """413 for a body that grew over the limit."""
        return _closing(
            413,
            f"The request body is larger than the API takes ({limit_bytes} bytes); "
            "send a smaller body.",
        )

    def stalled(self, message: str) -> BodyRefused:
        """408 for a body that stopped arriving."""
        return _closing(408, message)


def api_body_limits(timeout_seconds: float) -> BodyLimits:
    """The API's limits: ``MAX_API_BODY_BYTES``, each part within ``timeout_seconds``."""
    return BodyLimits(MAX_API_BODY_BYTES, timeout_seconds, _ApiRefusals())


class BoundedBody:
    """Wraps an ASGI ``receive``: raises :class:`BodyRefused` when the body breaks ``limits``.

    Once the body is complete, ``receive`` is passed through without a wait: the application
    may then wait for the client to disconnect for as long as it likes.
    """

    def __init__(self, receive: Receive, limits: BodyLimits) -> None:
        self._receive = receive
        self._limits = limits
        self._received = 0
        self._complete = False

    async def receive(self) -> Message:
        """The next ASGI message, within the limits."""
        if self._complete:
            return await self._receive()
        message = await self._limits.next_part(self._receive())
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            self._complete = not message.get("more_body", False)
            self._limits.check_size(self._received)
        return message


def _closing(status: int, message: str) -> BodyRefused:
    """An error answer that closes the connection rather than read the rest of the body."""
    return BodyRefused(JSONResponse({"error": message}, status, headers={"Connection": "close"}))
