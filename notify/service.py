"""Starting and stopping notifications beside the detector runner of this process."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from detectors import lifecycle
from detectors.severity import SeverityFileError, severity_in_force
from notify.outbox import Notifier
from notify.records import StoreRecorder
from notify.routing import NotifyFileError, load_routes
from seamwatch.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Notifications:
    """A running notifier and its subscription to the alert lifecycle."""

    notifier: Notifier
    stopped: bool = False

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Stop listening, then give queued notifications ``timeout_seconds`` to go out; once
        stopped, a further call does nothing."""
        if self.stopped:
            return
        self.stopped = True
        lifecycle.remove_listener(self.notifier.on_flush)
        self.notifier.stop(timeout_seconds)


def file_problems(notify_file: Path | None, *, notify: bool = True) -> list[str]:
    """The mistakes of the severity file and, with ``notify``, of the notification file
    (``notify_file`` or its variable), one message each: a start names them all in one round,
    beside the settings' own, rather than one file per try."""
    checks = [severity_in_force]
    if notify:
        checks.append(lambda: load_routes(notify_file))
    problems = []
    for check in checks:
        try:
            check()
        except (SeverityFileError, NotifyFileError) as exc:
            problems.append(str(exc))
    return problems


def public_dashboard_url(settings: Settings) -> str:
    """The dashboard address that links in messages use."""
    return settings.dashboard_public_url or settings.dashboard_url()


def start_notifications(
    settings: Settings, notify_file: Path | None = None
) -> Notifications | None:
    """Start delivering this process's alert events, or return None when no file is set.

    Raises :class:`~notify.routing.NotifyFileError` for a bad notification file and
    :class:`~detectors.severity.SeverityFileError` for a bad severity file.
    """
    # checked even without routes: the detectors and the API rank alerts with it, and a broken
    # file must stop the command at start, not surface later as failing requests. Messages
    # rank with the same source as the alert listings, so both follow an edited file alike.
    severity = severity_in_force()
    routes = load_routes(notify_file or settings.notify_file)
    if not routes:
        return None
    notifier = Notifier(
        routes,
        severity,
        public_dashboard_url(settings),
        StoreRecorder(),
        max_age=timedelta(minutes=settings.notify_max_age_minutes),
        queue_size=settings.notify_queue_size,
    )
    notifier.start()
    lifecycle.add_listener(notifier.on_flush)
    return Notifications(notifier)
