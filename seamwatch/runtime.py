"""The store shared by the roles of one process.

In the all-in-one mode the receiver, the detectors and the dashboard run in one process over
one embedded store (chDB opens a data directory from one process only). ``seamwatch up``
registers that store, and the settings it runs with, here; the dashboard and the other roles
take them from here and open their own only when they run alone.
"""

from __future__ import annotations

import threading

from seamwatch.settings import Settings
from storage import Store

_lock = threading.Lock()
_shared: Store | None = None
_settings: Settings | None = None


def share_store(store: Store | None) -> None:
    """Make ``store`` the one every role of this process uses (None to forget it)."""
    global _shared
    with _lock:
        _shared = store


def shared_store() -> Store | None:
    """The store registered by ``share_store``, if any."""
    with _lock:
        return _shared


def share_settings(settings: Settings | None) -> None:
    """Make the settings this process runs with (flags included) visible to every role."""
    global _settings
    with _lock:
        _settings = settings


def shared_settings() -> Settings | None:
    """The settings registered by ``share_settings``, if any."""
    with _lock:
        return _settings
