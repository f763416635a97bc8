"""The store shared by the roles of one process.

In the all-in-one mode the receiver, the detectors and the dashboard run in one process over
one embedded store (chDB opens a data directory from one process only). ``seamwatch up``
registers that store, and the settings it runs with, here; the dashboard and the other roles
take them from here and open their own only when they run alone.

A role that writes to the store from threads of its own (the notifier records its last
deliveries as it stops) registers with :func:`before_store_closes`; the command that closes
the store calls :func:`store_closing` first.

A receiver registers with :func:`before_judging`: a detector runner of the same process calls
:func:`judging` before it reads minutes, so the receiver stores what it has acknowledged first
and counts the spans of those minutes that come later as late, at once rather than when it
next reads the runner's stored position.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from seamwatch.settings import Settings
from storage import Store

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_shared: Store | None = None
_settings: Settings | None = None
_before_close: list[Callable[[], None]] = []
_before_judging: list[Callable[[datetime], None]] = []


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


def before_store_closes(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` once when this process is about to close its store; returns a
    function that takes it back (a role that stopped on its own)."""
    with _lock:
        _before_close.append(callback)

    def forget() -> None:
        with _lock:
            if callback in _before_close:
                _before_close.remove(callback)

    return forget


def store_closing() -> None:
    """Run the callbacks of :func:`before_store_closes`, the last registered first, and forget
    them; one that fails is logged and the others still run, so the store is closed anyway."""
    with _lock:
        callbacks = _before_close[::-1]
        _before_close.clear()
    for callback in callbacks:
        try:
            callback()
        except Exception:  # noqa: BLE001 - the store must close whatever one role does
            logger.exception("Stopping before the store closes failed")


def before_judging(callback: Callable[[datetime], None]) -> Callable[[], None]:
    """Call ``callback(until)`` whenever a detector runner of this process is about to judge
    the minutes before ``until``; returns a function that takes it back."""
    with _lock:
        _before_judging.append(callback)

    def forget() -> None:
        with _lock:
            if callback in _before_judging:
                _before_judging.remove(callback)

    return forget


def judging(until: datetime) -> None:
    """Tell the roles registered with :func:`before_judging` that the minutes before ``until``
    are about to be judged; one that fails is logged, and the minutes are judged anyway."""
    with _lock:
        callbacks = list(_before_judging)
    for callback in callbacks:
        try:
            callback(until)
        except Exception:  # noqa: BLE001 - judging goes on whatever one role does
            logger.exception("Preparing for the detectors' evaluation failed")
