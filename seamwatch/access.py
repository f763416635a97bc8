"""Answering a CLI question from the store, or from the process that holds it.

chDB lets one process open the embedded store. When ``seamwatch up`` holds it, commands such as
``seamwatch lineage`` ask that process through its JSON API instead, and print the same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from seamwatch.api import get_json, post_json, running_endpoint
from seamwatch.settings import Settings
from storage import Store, StoreLocked, open_store

T = TypeVar("T")


def answer(
    settings: Settings,
    local: Callable[[Store], T],
    api_path: str,
    params: dict[str, Any] | None = None,
) -> T | Any:
    """``local(store)`` when the store can be opened; else the running process's JSON answer.

    The JSON of the API and the value of ``local`` must hold the same content, so that callers
    print both the same way (``local`` should return plain JSON-ready data).
    """
    token = _token(settings)
    return _here_or_there(
        settings, local, lambda endpoint: get_json(endpoint, api_path, params, token)
    )


def act(
    settings: Settings, local: Callable[[Store], T], api_path: str, body: dict[str, Any]
) -> T | Any:
    """``local(store)`` when the store can be opened; else the same change POSTed to the API."""
    token = _token(settings)
    return _here_or_there(
        settings, local, lambda endpoint: post_json(endpoint, api_path, body, token)
    )


def _here_or_there(
    settings: Settings, local: Callable[[Store], T], remote: Callable[[str], Any]
) -> T | Any:
    try:
        store = open_store(settings)
    except StoreLocked:
        endpoint = running_endpoint(settings.data_dir)
        if endpoint is None:
            raise
        return remote(endpoint)
    try:
        return local(store)
    finally:
        store.close()


def _token(settings: Settings) -> str | None:
    return settings.auth_token.get_secret_value() if settings.auth_token else None
