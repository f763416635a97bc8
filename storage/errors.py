"""Errors raised by the store, by meaning rather than by backend.

StoreError
├── StoreUnavailable   the store cannot be reached now; worth retrying later
├── StoreLocked        another process holds the embedded data directory
├── NotClickHouse      something answers at the server's address, but not ClickHouse
└── QueryError         the statement or its data was refused; retrying will not help
    └── BadValue       a bound value cannot be read as its parameter's type
"""

import re


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


class BadValue(QueryError):
    """ClickHouse cannot read a bound value as the type of its ``{name:Type}`` parameter (a
    number that is not one): the value given is the problem, not the statement or the store."""

    def __init__(self, parameter: str, type_name: str) -> None:
        super().__init__(f"the store cannot read the value of {parameter!r} as {type_name}")
        self.parameter = parameter
        self.type_name = type_name


# ClickHouse's words, whatever the error code, when a bound value cannot be read
_UNREADABLE_VALUE = re.compile(
    r"cannot be parsed as (?P<type>.+?) for query parameter '(?P<name>[^']*)'", re.DOTALL
)


def query_error(message: str) -> QueryError:
    """The error for ClickHouse's refusal ``message``: BadValue when a bound value is to blame
    (its one line says which, where ClickHouse's text would quote the value raw)."""
    found = _UNREADABLE_VALUE.search(message)
    if found is None:
        return QueryError(message)
    return BadValue(found.group("name"), found.group("type"))
