"""Limits on the bodies of requests to the JSON API: their size and the time they take to arrive.

uvicorn limits neither, and the API's changes (acknowledge, silence, cancel) read their whole
body before looking at it, so a client could make the process hold a body of any size, or
wait for one for ever. The API's bodies are small JSON objects: a silence with its patterns and
reason is a few hundred bytes, so ``MAX_API_BODY_BYTES`` (64 KiB) leaves room for long notes
while a request costs little memory; a body over it is refused with 413, at once when its
Content-Length says so. A body that stops arriving for the body timeout
(``SEAMWATCH_BODY_TIMEOUT_SECONDS``, the trace receiver's setting) gets 408. Both answers are
the API's ``{"error": ...}`` and close the connection: the rest of the body is not worth
reading, and may never come.
"""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Message, Receive

# The same as a request head's limit (collector.http_protocol.MAX_HEAD_BYTES).
MAX_API_BODY_BYTES = 64 * 1024


class BodyRefused(Exception):
    """A request body broke a limit while the application read it; ``response`` says which."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.body.decode())
        self.response = response


def declared_too_large(
    headers: Headers, limit_bytes: int = MAX_API_BODY_BYTES
) -> JSONResponse | None:
    """413 for a body whose Content-Length is over the limit, before any of it is read."""
    try:
        declared = int(headers.get("content-length", ""))
    except ValueError:
        return None  # none (chunked): the limit is kept while reading
    if declared <= limit_bytes:
        return None
    return _closing(
        413,
        f"The request body of {declared} bytes (its Content-Length) is larger than the API "
        f"takes ({limit_bytes} bytes); send a smaller body.",
    )


class BoundedBody:
    """Wraps an ASGI ``receive``: raises :class:`BodyRefused` when the body grows over the
    limit, or when nothing of it arrives for ``timeout_seconds``.

    The wait is per part, not for the whole body, so a slow body that keeps arriving is read
    to its end. Once the body is complete, ``receive`` is passed through without a wait: the
    application may then wait for the client to disconnect for as long as it likes.
    """

    def __init__(
        self, receive: Receive, timeout_seconds: float, limit_bytes: int = MAX_API_BODY_BYTES
    ) -> None:
        self._receive = receive
        self._timeout_seconds = timeout_seconds
        self._limit_bytes = limit_bytes
        self._received = 0
        self._complete = False

    async def receive(self) -> Message:
        """The next ASGI message, within the limits."""
        if self._complete:
            return await self._receive()
        try:
            async with asyncio.timeout(self._timeout_seconds):
                message = await self._receive()
        except TimeoutError:
            raise BodyRefused(self._stalled()) from None
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            self._complete = not message.get("more_body", False)
            if self._received > self._limit_bytes:
                raise BodyRefused(
                    _closing(
                        413,
                        f"The request body is larger than the API takes ({self._limit_bytes} "
                        "bytes); send a smaller body.",
                    )
                )
        return message

    def _stalled(self) -> JSONResponse:
        return _closing(
            408,
            f"The request body stopped arriving: nothing came for {self._timeout_seconds:g} s "
            "(SEAMWATCH_BODY_TIMEOUT_SECONDS), so the connection is closed; send the whole "
            "body without pausing that long.",
        )


def _closing(status: int, message: str) -> JSONResponse:
    """An error answer that closes the connection rather than read the rest of the body."""
    return JSONResponse({"error": message}, status, headers={"Connection": "close"})
