"""Errors raised by the store, by meaning rather than by backend.

StoreError
├── StoreUnavailable   the store cannot be reached now; worth retrying later
├── StoreLocked        another process holds the embedded data directory
├── NotClickHouse      something answers at the server's address, but not ClickHouse
└── QueryError         the statement or its data was refused; retrying will not help
"""


class StoreError(Exception):
    """Base class of everything the store raises."""


class StoreUnavailable(StoreError):
    """The store is down, unreachable or overloaded; the same call may succeed later."""


class StoreLocked(StoreError):
    """The embedded data directory is opened by another process; ``holder`` is its pid."""

    def __init__(self, message: str, holder: str = "unknown") -> None:
        super().__init__(message)
        self.holder = holder


class NotClickHouse(StoreError):
    """Something answers at the ClickHouse URL's address, but it is not a ClickHouse server
    (a web page, another service): waiting for it will not help, the URL needs correcting."""


class QueryError(StoreError):
    """ClickHouse refused the statement or the data; a bug or bad input, not an outage."""
