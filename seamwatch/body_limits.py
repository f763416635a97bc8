"""Limits on a request body that uvicorn does not keep: its size and the time it takes to arrive.

One :class:`BodyLimits` serves the trace receiver (``collector.http_receiver``) and the JSON API
(``seamwatch.api_body``): a body whose Content-Length is over the limit is refused before any
of it is read, one that grows over the limit while it is read is refused then, and one that
sends nothing for the body timeout is refused too. Each caller words the refusal in its own
error document (:class:`BodyRefusals`); the size it counts is its own too, as the receiver
limits a gzip body once inflated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")


class BodyRefusals(Protocol):
    """How a caller answers a body that broke a limit: each method returns the exception to
    raise, which the caller turns into its answer."""

    def declared_too_large(self, declared_bytes: int, limit_bytes: int) -> Exception:
        """The body's Content-Length, ``declared_bytes``, is over the limit."""
        ...

    def too_large(self, limit_bytes: int) -> Exception:
        """The body grew over the limit while it was read."""
        ...

    def stalled(self, message: str) -> Exception:
        """Nothing of the body came for the body timeout; ``message`` says so to the client."""
        ...


@dataclass(frozen=True)
class BodyLimits:
    """At most ``limit_bytes`` of body, each part of it within ``timeout_seconds``;
    ``refusals`` words the answer when either is broken."""

    limit_bytes: int
    timeout_seconds: float
    refusals: BodyRefusals

    def check_declared(self, headers: Mapping[str, str]) -> None:
        """Refuse a body whose Content-Length is over the limit, before waiting for any of it."""
        try:
            declared = int(headers.get("content-length", ""))
        except ValueError:
            return  # none (chunked): the limit is kept while reading
        if declared > self.limit_bytes:
            raise self.refusals.declared_too_large(declared, self.limit_bytes)

    def check_size(self, size: int) -> None:
        """Refuse a body that has grown to ``size`` bytes while it is read, if over the limit."""
        if size > self.limit_bytes:
            raise self.refusals.too_large(self.limit_bytes)

    async def next_part(self, part: Awaitable[T]) -> T:
        """Await the next part of the body, refused when nothing comes for the timeout.

        The wait is per part, not for the whole body, so a large body on a slow link that
        keeps arriving is read to its end.
        """
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await part
        except TimeoutError:
            raise self.refusals.stalled(
                f"The request body stopped arriving: nothing came for {self.timeout_seconds:g} s "
                "(SEAMWATCH_BODY_TIMEOUT_SECONDS), so the connection is closed; send the whole "
                "body without pausing that long."
            ) from None
