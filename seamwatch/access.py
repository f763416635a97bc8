"""Answering a CLI question from the store, or from the process that holds it.

chDB lets one process open the embedded store. When a long-running process (``seamwatch
up``, ``collector``, ``detectors`` or ``dashboard``) holds it, commands such as ``seamwatch
lineage`` ask that process through its JSON API instead, and print the same answer. When
another short command holds it for a moment (three ``seamwatch alerts`` started at once),
they wait their turn. A holder that serves no API and does not let go (a command still at
work) is named, with what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random

from seamwatch.api import ANSWER_TIMEOUT_SECONDS, get_json, post_json, running_endpoint
from seamwatch.settings import Settings
from storage import Store, StoreLocked, open_store
from storage.pending import PROBE_SECONDS

T = TypeVar("T")

# A short command holds the store for a second or two (open, migrate, query, close).
LOCK_WAIT_SECONDS = 8.0
_LOCK_POLL_SECONDS = (0.1, 0.4)  # random, so that waiting commands do not retry in step


@dataclass(frozen=True)
class _Holder:
    """The running process that holds the store and serves its API."""

    endpoint: str
    pid: str


def answer(
    settings: Settings,
    local: Callable[[Store], T],
    api_path: str,
    params: dict[str, Any] | None = None,
    *,
    timeout_seconds: float = ANSWER_TIMEOUT_SECONDS,
) -> T | Any:
    """``local(store)`` when the store can be opened; else the running process's JSON answer.

    The JSON of the API and the value of ``local`` must hold the same content, so that callers
    print both the same way (``local`` should return plain JSON-ready data).
    """
    token = _token(settings)

    def remote(holder: _Holder) -> Any:
        return get_json(
            holder.endpoint,
            api_path,
            params,
            token,
            holder=holder.pid,
            timeout_seconds=timeout_seconds,
        )

    return _here_or_there(settings, local, remote)


def act(
    settings: Settings, local: Callable[[Store], T], api_path: str, body: dict[str, Any]
) -> T | Any:
    """``local(store)`` when the store can be opened; else the same change POSTed to the API."""
    token = _token(settings)

    def remote(holder: _Holder) -> Any:
        return post_json(holder.endpoint, api_path, body, token, holder=holder.pid)

    return _here_or_there(settings, local, remote)


def _here_or_there(
    settings: Settings, local: Callable[[Store], T], remote: Callable[[_Holder], Any]
) -> T | Any:
    found = _open_waiting(settings)
    if isinstance(found, _Holder):
        return remote(found)
    try:
        return local(found)
    finally:
        found.close()


def _open_waiting(settings: Settings) -> Store | _Holder:
    """The store, or the process that serves it; a store held by a process without an API
    (another short command) is tried again for up to ``LOCK_WAIT_SECONDS``."""
    retrying = Retrying(
        retry=retry_if_exception_type(StoreLocked),
        stop=stop_after_delay(LOCK_WAIT_SECONDS),
        wait=wait_random(*_LOCK_POLL_SECONDS),
        reraise=True,
    )
    try:
        return retrying(_open_or_find_holder, settings)
    except StoreLocked as locked:
        raise StoreLocked(_held_without_api(settings, locked.holder), locked.holder) from None


def _held_without_api(settings: Settings, holder: str) -> str:
    """What to do about a store that a process without the API kept through the wait."""
    return (
        f"The data directory {str(settings.data_dir)!r} is held by Seamwatch process {holder}, "
        f"which serves no API for this command and kept the store for {LOCK_WAIT_SECONDS:g} s "
        "(another command still at work). Try again once it is done. 'seamwatch up', "
        "'collector', 'detectors' and 'dashboard' answer 'alerts' (ack, silence and the "
        "rest), 'lineage', 'reconcile' and 'notify log' while they hold the store."
    )


def _open_or_find_holder(settings: Settings) -> Store | _Holder:
    try:
        # a ClickHouse server whose port accepts connections but never answers is named
        # within seconds, not after the driver's read timeout of 300 s
        return open_store(settings, probe_seconds=PROBE_SECONDS)
    except StoreLocked as locked:
        endpoint = running_endpoint(settings.data_dir)
        if endpoint is None:
            raise
        return _Holder(endpoint, locked.holder)


def _token(settings: Settings) -> str | None:
    return settings.auth_token.get_secret_value() if settings.auth_token else None
