"""Delivering notifications without ever holding up detection.

The detector runner hands every flush of alert events to :meth:`Notifier.on_flush`, which
decides where each one goes and only queues it: each destination has a bounded queue and a
worker thread of its own, so a chat outage delays that destination's messages and nothing
else. Each queued notification is recorded as ``queued`` in the delivery log, then as what
became of it. A full queue drops the new notification, counts it and records it as
``dropped``.

A worker posts each notification with retries (tenacity): exponential backoff with jitter,
capped at a minute, or the server's Retry-After when it gives one, at most ``attempts`` tries
within ``deadline_seconds`` (15 minutes: a chat outage of a few minutes loses nothing); 4xx
answers other than 408, 425 and 429 are not retried. While a notification is retried, the
destination's later ones wait behind it, in order.

Stopping ends retries: a backoff sleep is cut short and no later attempt is made. What is
still queued gets one attempt each, cut to end with the stop's timeout, until one fails in a
way worth retrying (the destination is down: the rest would wait for nothing); an attempt in
flight when the timeout ends is abandoned. Nothing the stop cut short is recorded as
``failed``: a notification whose attempt failed in a way worth retrying, was abandoned or
never made keeps its ``queued`` row, and the next start delivers it.

The queues live in memory, but the outbox they stand for is in the store: ``alert_events``
says what was raised and the delivery log what became of it. When the detectors start (and at
the first flush of any alert book in the process), the notifier reads the notified events of
the last ``RESUME_LOOKBACK`` and hands every one that has no final outcome at a destination
routing sends it to (``sent``, ``failed``, ``dropped``, ``stale`` or ``silenced``) to that
destination by the rules below, as if it had just been raised: left queued by a stop, caught
by a crash between queueing and sending or while being retried, or raised while notifications
were off. An event the log says went is never sent there again, and a minute evaluated again
after a restart does not repeat the messages of its events.

Catch-up after downtime must not flood chat: an event raised more than ``max_age`` before
the wall clock is recorded as ``stale`` and not sent. The one exception is the resolution of
an alert whose opening or escalation was sent to a destination: it is always sent there, so
no channel is left showing an alert as open forever. An escalation that reaches a
destination never told of its alert goes there as the opening: a channel's first message of
an alert is always its opening, whether the alert opened during downtime, under a silence,
below the channel's thresholds or before notifications were set up, or its opening gave up.
A destination is told of an alert once an opening or escalation of it was delivered there
(the delivery log says ``sent``, for a restart), or while one is queued or being retried
there (:meth:`DestinationWorker.told`); an escalation queued behind an opening that then
gives up goes as the opening.

A silenced alert is recorded as ``silenced`` and withheld: once no silence covers it (the
silence was ended or expired, or a category silence no longer covers every category the alert
has shown) and it is still open, its opening goes, once, to the destinations it was kept from,
and its resolution follows as for any alert. The check runs at every flush of the detector
runner (each minute); after a restart the delivery log says which open alerts were withheld
from where.

Every message sent says who holds its alert, read from the acknowledgements when it is
queued: an opening released after a silence tells the channel that someone took the alert
on meanwhile.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    wait_exponential_jitter,
)

from detectors.lifecycle import (
    OPEN,
    Alert,
    AlertBook,
    latest_told_events,
    load_alerts,
    notified_events_since,
    opening_events,
)
from detectors.severity import Severity, SeveritySource
from detectors.silence_scope import covering_silence
from notify.alertmanager import AlertmanagerDestination
from notify.base import DeliveryError, Destination, HttpRequest, TransientDeliveryError
from notify.google_chat import GoogleChatDestination
from notify.message import (
    ESCALATED,
    NOTIFIED_EVENTS,
    OPENED,
    RESOLVED,
    Notification,
    build_notification,
)
from notify.records import (
    DROPPED,
    FAILED,
    QUEUED,
    SENT,
    SILENCED,
    STALE,
    Outcome,
    Recorder,
    epoch_millis,
    settled,
    told_and_withheld,
)
from notify.routing import Route
from notify.slack import SlackDestination
from notify.teams import TeamsDestination
from notify.webhook import WebhookDestination
from seamwatch.times import as_utc, readable_utc
from storage.base import Store

logger = logging.getLogger(__name__)

DESTINATION_KINDS: dict[str, type[Destination]] = {
    "slack": SlackDestination,
    "teams": TeamsDestination,
    "google_chat": GoogleChatDestination,
    "webhook": WebhookDestination,
    "alertmanager": AlertmanagerDestination,
}
DEFAULT_QUEUE_SIZE = 1000
DEFAULT_MAX_AGE = timedelta(minutes=15)
# How far back a start looks for alert events left undelivered: a week's outage is caught up;
# well inside the delivery log's 90 days, so an event that went is always known to have gone.
RESUME_LOOKBACK = timedelta(days=7)
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a worker tries before it gives up on one notification.

    The default rides out a chat outage of several minutes: waits of 1, 2, 4 ... 32 s, then
    a minute each (plus up to a second of jitter), for up to 15 minutes from the first
    attempt, about 20 attempts; ``attempts`` bounds them too. A giving up is final (the
    delivery log says ``failed``), so it must not come after half a minute of 503s."""

    attempts: int = 30
    deadline_seconds: float = 900.0
    first_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts!r}")
        if self.first_backoff_seconds > self.max_backoff_seconds:
            raise ValueError(
                "first_backoff_seconds must be less than or equal to max_backoff_seconds, got "
                f"{self.first_backoff_seconds!r} > {self.max_backoff_seconds!r}"
            )


class _StopReached(Exception):
    """The stop left no turn for this attempt: a retry, or a first attempt out of time."""


def make_destination(route: Route) -> Destination:
    """The destination object of ``route``'s kind."""
    return DESTINATION_KINDS[route.kind](route)


class DestinationWorker:
    """One destination's queue and the thread that delivers it."""

    def __init__(
        self,
        destination: Destination,
        recorder: Recorder,
        policy: RetryPolicy,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        *,
        sleep: Callable[[float], object] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``sleep`` waits between attempts (default: until the stop, at most the backoff)
        and ``monotonic`` times the retries' ``deadline_seconds``; tests pass their own."""
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size!r}")
        self.destination = destination
        self.route = destination.route
        self.recorder = recorder
        self.policy = policy
        self.dropped = 0
        self._queue: queue.Queue[Notification] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._monotonic = monotonic
        # when the stop's timeout ends (time.monotonic()); no attempt may run past it
        self._deadline = math.inf
        # set once the stop left a notification queued: the destination is failing, so the
        # rest of the queue is not tried either
        self._stop_tries_over = False
        # held while recording: once abandoned at a stop, the worker records nothing more
        self._recording = threading.Lock()
        self._abandoned = False
        # the notification being posted, for the stop's warning when it is cut off
        self._in_flight: Notification | None = None
        self._client = httpx.Client(follow_redirects=False)
        # What this destination heard of each alert (see told()), by alert id: openings and
        # escalations queued or in flight here, alerts one of them was delivered of, and
        # alerts whose every message here so far gave up. Offers come from the runner's
        # thread, outcomes from the worker's.
        self._told_lock = threading.Lock()
        self._pending: Counter[str] = Counter()
        self._delivered: set[str] = set()
        self._gave_up: set[str] = set()
        self._thread = threading.Thread(
            target=self._run, name=f"seamwatch-notify-{destination.name}", daemon=True
        )

    def start(self) -> None:
        """Start delivering in the background."""
        self._thread.start()

    def offer(self, notification: Notification) -> bool:
        """Queue ``notification``; False (and counted) when the queue is full."""
        telling = notification.event != RESOLVED
        if telling:
            with self._told_lock:
                self._pending[notification.alert_id] += 1
        try:
            self._queue.put_nowait(notification)
        except queue.Full:
            if telling:
                self._settle(notification, DROPPED)
            self.dropped += 1
            return False
        return True

    def told(self, alert_id: str) -> bool:
        """Whether this destination was told of the alert: an opening or escalation of it was
        delivered here (in this process, or before a restart as the delivery log says), or
        one is queued or being retried here. A message that gave up told it nothing."""
        with self._told_lock:
            return alert_id in self._delivered or self._pending[alert_id] > 0

    def mark_told(self, alert_id: str) -> None:
        """The delivery log says an opening or escalation of the alert was sent here."""
        with self._told_lock:
            self._delivered.add(alert_id)

    def forget(self, alert_id: str) -> None:
        """The alert resolved and no resolution of it goes here: nothing more of it comes."""
        with self._told_lock:
            self._delivered.discard(alert_id)
            self._gave_up.discard(alert_id)

    def _settle(self, notification: Notification, outcome: str) -> None:
        """What ``notification`` ending as ``outcome`` says of what the destination heard."""
        alert_id = notification.alert_id
        if notification.event == RESOLVED:
            if outcome != QUEUED:
                self.forget(alert_id)  # nothing more of the alert comes
            return
        with self._told_lock:
            if self._pending[alert_id] > 1:
                self._pending[alert_id] -= 1
            else:
                del self._pending[alert_id]
            if outcome == SENT:
                self._delivered.add(alert_id)
                self._gave_up.discard(alert_id)
            elif outcome == FAILED and alert_id not in self._delivered:
                self._gave_up.add(alert_id)

    def _as_first_word(self, notification: Notification) -> Notification:
        """An escalation queued behind a message of its alert that then gave up here goes as
        the alert's opening: the destination never heard of the alert."""
        if notification.event != ESCALATED:
            return notification
        with self._told_lock:
            unheard = notification.alert_id in self._gave_up
        if not unheard:
            return notification
        logger.info(
            "Sending escalation of alert %s to %s as its opening: the earlier message of the "
            "alert gave up there",
            notification.alert_id,
            self.destination.describe(),
        )
        return replace(notification, event=OPENED, source_event=ESCALATED)

    def waiting(self) -> int:
        """Notifications queued and not yet taken by the worker."""
        return self._queue.qsize()

    def request_stop(self, deadline: float) -> None:
        """End retries and backoff sleeps; each notification not yet tried gets one attempt,
        cut to end by ``deadline`` (a ``time.monotonic()`` time), and none after it."""
        self._deadline = min(self._deadline, deadline)
        self._stop.set()

    def stop(self, timeout_seconds: float) -> None:
        """Stop within ``timeout_seconds``: queued notifications get one attempt each until
        then; what is left, or in flight then, stays queued in the delivery log."""
        self.request_stop(time.monotonic() + timeout_seconds)
        if self._thread.ident is not None:
            self._thread.join(max(0.0, self._deadline - time.monotonic()))
        if self._thread.is_alive():
            with self._recording:
                self._abandoned = True
            in_flight = self._in_flight
            logger.warning(
                "Stopped while %s to %s was in flight; it stays queued in the delivery log and "
                "goes out at the next start",
                f"{in_flight.event} of alert {in_flight.alert_id}" if in_flight else "a delivery",
                self.destination.describe(),
            )
        left = []
        while True:
            try:
                left.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if left:
            logger.warning(
                "Stopped with %d notification(s) for %s undelivered; they stay queued in the "
                "delivery log and go out at the next start (as stale if older than the "
                "catch-up limit by then)",
                len(left),
                self.destination.describe(),
            )
        if not self._thread.is_alive():
            self._client.close()

    def deliver(self, notification: Notification) -> Outcome:
        """Post ``notification`` with retries, record the outcome and return it; ``queued``,
        and nothing recorded, when the stop cut it short (its queued row stands)."""
        notification = self._as_first_word(notification)
        self._in_flight = notification
        try:
            outcome = self._post(notification)
        finally:
            self._in_flight = None
        self._settle(notification, outcome.outcome)
        return outcome

    def _post(self, notification: Notification) -> Outcome:
        """:meth:`deliver` but for what it says of the destination's hearing."""
        if isinstance(self.destination, AlertmanagerDestination):
            self.destination.track(notification)
        request = self.destination.request(notification)
        attempts = 0
        try:
            for attempt in self._retrying(notification):
                with attempt:
                    timeout = self._attempt_timeout(attempt.retry_state.attempt_number)
                    attempts = attempt.retry_state.attempt_number
                    status = self.destination.send(self._client, request, timeout)
        except _StopReached:
            return self._left_queued(notification, attempts, "the stop ends its tries")
        except DeliveryError as exc:
            if isinstance(exc, TransientDeliveryError) and self._stop.is_set():
                return self._left_queued(notification, attempts, str(exc))
            reason = str(exc) + _beyond_retries(exc, attempts, self.policy)
            logger.error(
                "Gave up delivering %s of alert %s to %s after %d attempt(s): %s",
                notification.event,
                notification.alert_id,
                self.destination.describe(),
                attempts,
                reason,
            )
            outcome = self._outcome(notification, FAILED, attempts, exc.status or 0, reason)
        except Exception as exc:  # noqa: BLE001 - our bug must not stop the worker; log it whole
            logger.exception("Delivering to %s failed unexpectedly", self.destination.describe())
            outcome = self._outcome(notification, FAILED, attempts, 0, f"{type(exc).__name__}")
        else:
            outcome = self._outcome(notification, SENT, attempts, status)
        self._record_step(outcome)
        return outcome

    def _record_step(self, outcome: Outcome) -> None:
        """Write ``outcome`` to the delivery log, unless the stop abandoned this worker."""
        with self._recording:
            if not self._abandoned:
                self.recorder.record([outcome])

    def _attempt_timeout(self, attempt_number: int) -> float:
        """How long attempt ``attempt_number`` may wait for an answer: the destination's
        timeout, cut to the stop's end while stopping; :class:`_StopReached` when stopping
        leaves it no turn (retries end with the stop, and so do first tries once one of them
        failed or the time is up)."""
        timeout = self.route.model.timeout_seconds
        if not self._stop.is_set():
            return timeout
        left = self._deadline - time.monotonic()
        if attempt_number > 1 or left <= 0 or self._stop_tries_over:
            raise _StopReached
        return min(timeout, left)

    def _left_queued(self, notification: Notification, attempts: int, why: str) -> Outcome:
        """Leave ``notification`` queued in the delivery log for the next start, and say so;
        the rest of the queue stays there too, untried."""
        self._stop_tries_over = True
        logger.warning(
            "Stopping: %s of alert %s to %s stays queued after %d attempt(s) (%s); it goes "
            "out at the next start",
            notification.event,
            notification.alert_id,
            self.destination.describe(),
            attempts,
            why,
        )
        return self._outcome(notification, QUEUED, attempts)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                notification = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                notification = None
            if notification is not None:
                self.deliver(notification)
            self._resend_if_due()
        # what the stop leaves in the queue stays queued in the log; stop() counts it
        while not self._stop_tries_over:
            try:
                notification = self._queue.get_nowait()
            except queue.Empty:
                return
            self.deliver(notification)

    def _resend_if_due(self) -> None:
        destination = self.destination
        if not isinstance(destination, AlertmanagerDestination):
            return
        request = destination.resend_request()
        if request is None:
            return
        try:
            destination.send(self._client, request)
        except DeliveryError as exc:
            logger.warning(
                "Resending %d firing alert(s) to %s failed: %s; next try in %.0fs",
                len(request.body),
                destination.describe(),
                exc,
                destination.resend_interval.total_seconds(),
            )

    def _retrying(self, notification: Notification) -> Retrying:
        policy = self.policy
        backoff = wait_exponential_jitter(
            multiplier=policy.first_backoff_seconds,
            max=policy.max_backoff_seconds,
            jitter=policy.first_backoff_seconds,
        )

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, TransientDeliveryError) and error.retry_after_seconds is not None:
                return error.retry_after_seconds
            return backoff(state)

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            logger.warning(
                "Delivering %s of alert %s to %s failed (%s); retrying in %.2fs",
                notification.event,
                notification.alert_id,
                self.destination.describe(),
                error,
                state.upcoming_sleep,
            )
            # the log shows the tries so far while they go on: during a chat outage it said
            # "queued, 0 attempts" for a quarter of an hour
            self._record_step(
                self._outcome(
                    notification,
                    QUEUED,
                    state.attempt_number,
                    getattr(error, "status", None) or 0,
                    f"{error}; retrying in {state.upcoming_sleep:.0f} s",
                )
            )

        started = self._monotonic()

        def out_of_time(state: RetryCallState) -> bool:
            # no attempt after the deadline: the next one would come after it
            elapsed = self._monotonic() - started
            return elapsed + state.upcoming_sleep >= policy.deadline_seconds

        return Retrying(
            stop=stop_any(
                stop_after_attempt(policy.attempts),
                out_of_time,
                lambda _state: self._stop.is_set(),
            ),
            wait=wait,
            retry=retry_if_exception_type(TransientDeliveryError),
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )

    def _outcome(
        self,
        notification: Notification,
        outcome: str,
        attempts: int = 0,
        http_status: int = 0,
        reason: str = "",
    ) -> Outcome:
        return Outcome(
            at=datetime.now(UTC),
            alert_id=notification.alert_id,
            event=notification.event,
            event_at=notification.at,
            destination=self.destination.name,
            kind=self.destination.kind,
            outcome=outcome,
            attempts=attempts,
            http_status=http_status,
            reason=reason,
            source_event=notification.source_event or notification.event,
        )


@dataclass
class Withheld:
    """An open alert that silences kept from ``destinations``, none of which heard of it
    since; ``opening`` is what they get once no silence covers it."""

    opening: Notification
    destinations: set[str] = field(default_factory=set)


class Notifier:
    """Turns alert events into notifications and queues them for their destinations.

    ``severity`` is the process's :class:`~detectors.severity.SeveritySource`, so tiers in
    messages follow an edited severity file as alert listings do; a fixed
    :class:`~detectors.severity.Severity` ranks every message the same."""

    def __init__(
        self,
        routes: list[Route],
        severity: Severity | SeveritySource,
        dashboard_url: str,
        recorder: Recorder,
        *,
        max_age: timedelta = DEFAULT_MAX_AGE,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.severity = severity
        self.dashboard_url = dashboard_url
        self.recorder = recorder
        self.max_age = max_age
        self.workers = [
            DestinationWorker(
                make_destination(route), recorder, policy or RetryPolicy(), queue_size
            )
            for route in routes
        ]
        self._clock = clock or (lambda: datetime.now(UTC))
        # Open alerts that silences kept from destinations, by alert id.
        self.withheld: dict[str, Withheld] = {}
        # (alert id, event, ms) of the events the start resumed: a minute evaluated again
        # after a restart raises them again, and they must not go out twice
        self._resumed: set[tuple[str, str, int]] = set()
        self._store: Store | None = None

    def start(self) -> None:
        """Start every destination's worker."""
        for worker in self.workers:
            worker.start()
        logger.info(
            "Notifications go to %d destination(s): %s",
            len(self.workers),
            ", ".join(f"{w.destination.name} ({w.destination.kind})" for w in self.workers),
        )

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Stop every worker within ``timeout_seconds``; what is not delivered by then stays
        queued in the delivery log for the next start."""
        deadline = time.monotonic() + timeout_seconds
        for worker in self.workers:
            worker.request_stop(deadline)
        for worker in self.workers:
            worker.stop(max(0.0, deadline - time.monotonic()))

    def on_flush(self, store: Store, alerts: list[Alert], events: list[dict[str, Any]]) -> None:
        """The alert book's listener: notify the events of one flush. Never raises."""
        try:
            severity = self._severity()
            if self._store is None:
                # this flush's events are in alert_events already: the start resumes them
                self._attach(store, alerts, events)
            else:
                fresh = [e for e in events if _event_key(e) not in self._resumed]
                self.submit(self._notifications(alerts, fresh, severity))
            self._refresh_withheld(alerts, severity)
            self.release_unsilenced()
            self._refresh_firing(alerts, severity)
        except Exception:  # noqa: BLE001 - detection must go on whatever happens to chat
            logger.exception("Could not queue notifications of %d alert event(s)", len(events))

    def _notifications(
        self, alerts: list[Alert], events: list[dict[str, Any]], severity: Severity
    ) -> list[Notification]:
        """The notifications of the notified ``events`` among those of ``alerts``."""
        by_id = {alert.alert_id: alert for alert in alerts}
        return [
            build_notification(by_id[event["alert_id"]], event, severity, self.dashboard_url)
            for event in events
            if event["event"] in NOTIFIED_EVENTS and event["alert_id"] in by_id
        ]

    def submit(self, notifications: list[Notification]) -> None:
        """Queue each notification for the destinations that want it, or record why not."""
        self.recorder.record(self._dispatch([(n, None) for n in notifications]))

    def _dispatch(self, items: list[tuple[Notification, set[str] | None]]) -> list[Outcome]:
        """Queue each notification for the destinations that want it (of those named with
        it, when named) or say why not; return the outcomes to record."""
        now = self._clock()
        outcomes: list[Outcome] = []
        silences: list[dict[str, Any]] | None = None
        notifications = self._with_holders([notification for notification, _ in items])
        for notification, (_, only) in zip(notifications, items, strict=True):
            if notification.event == RESOLVED:
                # nothing is left to release, whoever wants the resolution
                self.withheld.pop(notification.alert_id, None)
            workers = self._workers_for(notification)
            if only is not None:
                workers = [w for w in workers if w.destination.name in only]
            if not workers:
                continue
            if notification.event == RESOLVED:
                announced = self._told(notification.alert_id)
            else:
                announced = set()
            if now - notification.at > self.max_age:
                fresh = [w for w in workers if w.destination.name in announced]
                stale = [w for w in workers if w.destination.name not in announced]
                age = (now - notification.at).total_seconds() / 60
                outcomes += [
                    w._outcome(notification, STALE, reason=f"raised {age:.0f} min ago")
                    for w in stale
                ]
                workers = fresh
            if workers:
                silences = self._silences() if silences is None else silences
                silence = _matching_silence(silences, notification)
                if silence is not None:
                    reason = f"silence {silence['silence_id']}"
                    outcomes += [w._outcome(notification, SILENCED, reason=reason) for w in workers]
                    self._withhold(notification, workers)
                    continue
            for worker in workers:
                outcomes += self._offer(worker, self._first_word(notification, worker))
        self._forget_resolved(items, outcomes)
        return outcomes

    def _forget_resolved(
        self, items: list[tuple[Notification, set[str] | None]], outcomes: list[Outcome]
    ) -> None:
        """Destinations that get no resolution of a resolved alert forget what they heard of
        it (those that do, once it is delivered)."""
        resolved = {n.alert_id for n, _ in items if n.event == RESOLVED}
        if not resolved:
            return
        getting = {
            (o.alert_id, o.destination)
            for o in outcomes
            if o.event == RESOLVED and o.outcome == QUEUED
        }
        for alert_id in resolved:
            for worker in self.workers:
                if (alert_id, worker.destination.name) not in getting:
                    worker.forget(alert_id)

    def _first_word(self, notification: Notification, worker: DestinationWorker) -> Notification:
        """An escalation that reaches a destination never told of its alert is that
        destination's opening: a silence kept the opening from it, the opening was stale or
        below its thresholds, or notifications were set up while the alert was open."""
        if notification.event == ESCALATED and not worker.told(notification.alert_id):
            return replace(notification, event=OPENED, source_event=ESCALATED)
        return notification

    def release_unsilenced(self) -> None:
        """Send the opening of each withheld alert that no silence covers any more, once, to
        the destinations it was kept from (those that still want it)."""
        if not self.withheld or self._store is None:
            return
        from detectors.alert_actions import active_silences

        try:
            silences = active_silences(self._store, self._clock())
        except Exception as exc:  # noqa: BLE001 - the next flush checks again
            logger.warning("Could not read silences (%s); withheld alerts wait", exc)
            return
        released = [
            withheld
            for withheld in self.withheld.values()
            if _matching_silence(silences, withheld.opening) is None
        ]
        openings = self._with_holders([withheld.opening for withheld in released])
        outcomes: list[Outcome] = []
        for withheld, opening in zip(released, openings, strict=True):
            alert_id = opening.alert_id
            del self.withheld[alert_id]
            workers = [
                w
                for w in self.workers
                if w.destination.name in withheld.destinations and w.route.wants(opening)
            ]
            logger.info(
                "Alert %s is open and no longer silenced; sending its opening to %s",
                alert_id,
                ", ".join(w.destination.name for w in workers) or "no destination (none wants it)",
            )
            for worker in workers:
                outcomes += self._offer(worker, opening)
        self.recorder.record(outcomes)

    def _withhold(self, notification: Notification, workers: list[DestinationWorker]) -> None:
        """Remember the destinations a silence kept ``notification`` from, unless they were
        told of its alert already (they get its resolution anyway)."""
        if notification.event == RESOLVED:
            return
        names = {w.destination.name for w in workers} - self._told(notification.alert_id)
        if not names:
            return
        opening = replace(
            notification, event=OPENED, source_event=notification.source_event or notification.event
        )
        withheld = self.withheld.setdefault(notification.alert_id, Withheld(opening))
        withheld.destinations |= names

    def _refresh_withheld(self, alerts: list[Alert], severity: Severity) -> None:
        """Withheld openings carry the facts of the alert's latest minute, as a live opening
        would when it is sent."""
        for alert in alerts:
            withheld = self.withheld.get(alert.alert_id)
            if withheld is None:
                continue
            if alert.state != OPEN:
                del self.withheld[alert.alert_id]
                continue
            opening = withheld.opening
            rebuilt = build_notification(alert, _event_of(opening), severity, self.dashboard_url)
            withheld.opening = replace(rebuilt, source_event=opening.source_event)

    def _refresh_firing(self, alerts: list[Alert], severity: Severity) -> None:
        """Alertmanager's resends carry each firing alert as it is now: the facts of its
        latest minute and who holds it (an acknowledgement given since its last post)."""
        by_id = {alert.alert_id: alert for alert in alerts}
        for worker in self.workers:
            destination = worker.destination
            if not isinstance(destination, AlertmanagerDestination):
                continue
            firing = destination.firing()
            for index, notification in enumerate(firing):
                alert = by_id.get(notification.alert_id)
                if alert is not None and alert.state == OPEN:
                    rebuilt = build_notification(
                        alert, _event_of(notification), severity, self.dashboard_url
                    )
                    # a label: Alertmanager would take a new tier for a new alert
                    firing[index] = replace(
                        rebuilt, tier=notification.tier, source_event=notification.source_event
                    )
            destination.refresh(self._with_holders(firing))

    def _offer(self, worker: DestinationWorker, notification: Notification) -> list[Outcome]:
        """Queue ``notification`` for ``worker``: the outcome says ``queued``, or ``dropped``
        when the queue is full."""
        # made before the worker can take it, so it is older than the outcome of sending
        queued = worker._outcome(notification, QUEUED)
        if worker.offer(notification):
            if notification.event != RESOLVED:
                self._heard(notification.alert_id, worker.destination.name)
            return [queued]
        logger.warning(
            "Queue of %s is full; dropping %s of alert %s (%d dropped so far)",
            worker.destination.describe(),
            notification.event,
            notification.alert_id,
            worker.dropped,
        )
        return [worker._outcome(notification, DROPPED, reason="queue full")]

    def _heard(self, alert_id: str, destination: str) -> None:
        """``destination`` was told of the alert: nothing is withheld from it any more."""
        withheld = self.withheld.get(alert_id)
        if withheld is None:
            return
        withheld.destinations.discard(destination)
        if not withheld.destinations:
            del self.withheld[alert_id]

    def _told(self, alert_id: str) -> set[str]:
        """The destinations told of the alert (:meth:`DestinationWorker.told`)."""
        return {w.destination.name for w in self.workers if w.told(alert_id)}

    def _workers_for(self, notification: Notification) -> list[DestinationWorker]:
        announced = self._told(notification.alert_id)
        if notification.event == RESOLVED and announced:
            return [
                w
                for w in self.workers
                if w.destination.name in announced and RESOLVED in w.route.model.events
            ]
        # a destination that wants openings only still gets the escalation that is its opening
        return [w for w in self.workers if w.route.wants(self._first_word(notification, w))]

    def _with_holders(self, notifications: list[Notification]) -> list[Notification]:
        """``notifications``, each saying who holds its alert now (the latest to acknowledge
        it); as they are when nobody does or the store cannot say."""
        if not notifications or self._store is None:
            return notifications
        from detectors.alert_actions import acknowledgements

        try:
            held = acknowledgements(self._store, sorted({n.alert_id for n in notifications}))
        except Exception as exc:  # noqa: BLE001 - a message without it beats no message
            logger.warning("Could not read who acknowledged alerts (%s); sending without", exc)
            return notifications
        return [_held_by(n, held.get(n.alert_id)) for n in notifications]

    def _severity(self) -> Severity:
        """The severity in force now."""
        if isinstance(self.severity, SeveritySource):
            return self.severity.current()
        return self.severity

    def _silences(self) -> list[dict[str, Any]]:
        if self._store is None:
            return []
        from detectors.alert_actions import active_silences

        try:
            return active_silences(self._store, self._clock())
        except Exception as exc:  # noqa: BLE001 - without silences, notify rather than stall
            logger.warning("Could not read silences (%s); notifying as if none were set", exc)
            return []

    def _attach(self, store: Store, changed: list[Alert], events: list[dict[str, Any]]) -> None:
        """First flush: record into ``store``; pick up the alerts that were open before it;
        deliver what the delivery log leaves unfinished, this flush's ``events`` included."""
        self._store = store
        attach = getattr(self.recorder, "attach", None)
        if attach is not None:
            attach(store)
        pending, alerts = self._unfinished(store, changed, events)
        self._resume_alerts(store, alerts)
        self._resume_pending(pending)

    def _unfinished(
        self, store: Store, changed: list[Alert], events: list[dict[str, Any]]
    ) -> tuple[list[tuple[Notification, set[str] | None]], list[Alert]]:
        """The notifications of the alert events since ``RESUME_LOOKBACK`` (and of
        ``events``), each with the destinations where the delivery log has no final outcome
        for it; and their alerts with ``changed``."""
        severity = self._severity()
        since = self._clock() - RESUME_LOOKBACK
        try:
            stored = notified_events_since(store, since)
            oldest = min([since, *(as_utc(event["at"]) for event in events)])
            done = settled(store, oldest)
            everything = _in_order(events, stored)
            alerts = load_alerts(store, sorted({event["alert_id"] for event in everything}))
        except Exception as exc:  # noqa: BLE001 - then only this flush's events go out
            logger.warning(
                "Could not read alert events and the delivery log to resume notifications "
                "(%s); alert events left undelivered before this start are not sent",
                exc,
            )
            return [(n, None) for n in self._notifications(changed, events, severity)], changed
        alerts.update({alert.alert_id: alert for alert in changed})  # the runner's, newer
        self._resumed = {_event_key(event) for event in everything}
        names = [worker.destination.name for worker in self.workers]
        pending: list[tuple[Notification, set[str] | None]] = []
        for event in everything:
            alert = alerts.get(event["alert_id"])
            key = _event_key(event)
            left = {name for name in names if (*key, name) not in done}
            if alert is not None and left:
                notification = build_notification(alert, event, severity, self.dashboard_url)
                pending.append((notification, left))
        involved = {notification.alert_id for notification, _ in pending}
        return pending, [*changed, *(alerts[alert_id] for alert_id in involved)]

    def _resume_pending(self, pending: list[tuple[Notification, set[str] | None]]) -> None:
        """Hand the unfinished notifications to their destinations by the usual rules, and
        say in one line what became of them."""
        outcomes = self._dispatch(pending)
        self.recorder.record(outcomes)
        if not outcomes:
            return
        counts = Counter(outcome.outcome for outcome in outcomes)
        logger.info(
            "Notifications left unfinished before this start (alert events since %s with no "
            "final outcome in the delivery log): %s",
            readable_utc(self._clock() - RESUME_LOOKBACK),
            ", ".join(
                f"{count} {_RESUMED_AS.get(outcome, outcome)}"
                for outcome, count in sorted(counts.items())
            ),
        )

    def _resume_alerts(self, store: Store, alerts: list[Alert]) -> None:
        """Which destinations were told of the open alerts and of ``alerts`` before this
        start, so resolutions go where openings went, and which open alerts silences kept
        from which destinations, so their openings wait for the silences to end."""
        try:
            loaded = AlertBook(store).load_open()
        except Exception as exc:  # noqa: BLE001 - a fresh start simply has nothing to resume
            logger.warning("Could not read open alerts to resume notifications: %s", exc)
            return
        # ``alerts`` has the runner's own copies, newer, and may have resolved some of them.
        by_id = {alert.alert_id: alert for alert in loaded.values()}
        by_id.update({alert.alert_id: alert for alert in alerts})
        withheld: dict[str, set[str]] = {}
        firing: list[tuple[AlertmanagerDestination, Alert]] = []
        for worker in self.workers:
            name = worker.destination.name
            try:
                told, kept = told_and_withheld(store, name, list(by_id))
            except Exception as exc:  # noqa: BLE001 - as above
                logger.warning("Could not read the delivery log of %s: %s", name, exc)
                continue
            for alert_id in kept:
                withheld.setdefault(alert_id, set()).add(name)
            # told before the restart: the resolution goes there
            for alert_id in told:
                worker.mark_told(alert_id)
            if isinstance(worker.destination, AlertmanagerDestination):
                firing += [
                    (worker.destination, by_id[alert_id])
                    for alert_id in told
                    if by_id[alert_id].state == OPEN
                ]
        self._resume_firing(store, firing)
        self._resume_withheld(store, [by_id[alert_id] for alert_id in withheld], withheld)

    def _resume_firing(
        self, store: Store, firing: list[tuple[AlertmanagerDestination, Alert]]
    ) -> None:
        """Alertmanager goes on hearing that the open alerts it was told of fire, as their
        latest message said (what changed) and with who holds them now."""
        if not firing:
            return
        try:
            latest = latest_told_events(store, sorted({alert.alert_id for _, alert in firing}))
        except Exception as exc:  # noqa: BLE001 - resend without what changed rather than not
            logger.warning("Could not read the latest events of the firing alerts: %s", exc)
            latest = {}
        severity = self._severity()
        notifications = [
            build_notification(
                alert,
                latest.get(alert.alert_id)
                or {"event": OPENED, "at": alert.opened_at, "kind": alert.kind},
                severity,
                self.dashboard_url,
            )
            for _, alert in firing
        ]
        for (destination, _), notification in zip(
            firing, self._with_holders(notifications), strict=True
        ):
            destination.track(notification, posted=False)

    def _resume_withheld(
        self, store: Store, alerts: list[Alert], destinations: dict[str, set[str]]
    ) -> None:
        """Silences kept these open alerts from ``destinations`` before a restart: their
        openings wait for the silences to end, as if the process had not stopped."""
        alerts = [alert for alert in alerts if alert.state == OPEN]
        try:
            openings = opening_events(store, [alert.alert_id for alert in alerts])
        except Exception as exc:  # noqa: BLE001 - as above
            logger.warning("Could not read how the silenced open alerts opened: %s", exc)
            return
        for alert in alerts:
            event = openings.get(alert.alert_id) or {
                "event": OPENED,
                "at": alert.opened_at,
                "kind": alert.kind,
            }
            opening = build_notification(alert, event, self._severity(), self.dashboard_url)
            self.withheld[alert.alert_id] = Withheld(opening, destinations[alert.alert_id])


def _beyond_retries(exc: DeliveryError, attempts: int, policy: RetryPolicy) -> str:
    """Why a destination that asked to be tried again was not: with attempts left, the tries
    end only when the next one, after its Retry-After, would come past the retry period (the
    reason said "503" alone)."""
    wait = getattr(exc, "retry_after_seconds", None)
    if wait is None or attempts >= policy.attempts:
        return ""
    return (
        f"; it asked to be tried again in {wait:,.0f} s, beyond the "
        f"{policy.deadline_seconds / 60:g}-minute retry period"
    )


def _event_of(notification: Notification) -> dict[str, Any]:
    """The alert event ``notification`` tells of, as ``alert_events`` holds it."""
    return {
        "event": notification.event,
        "at": notification.at,
        "kind": notification.kind,
        "detail": notification.what_changed,
    }


# How the start's summary line says what became of the notifications it resumed.
_RESUMED_AS = {
    QUEUED: "queued for delivery",
    STALE: "recorded as stale (too old to send)",
    SILENCED: "kept back by a silence",
    DROPPED: "dropped (queue full)",
}
# Raised in one minute, an alert's opening comes before its escalations, its resolution last.
_EVENT_ORDER = {OPENED: 0, ESCALATED: 1, RESOLVED: 2}


def _event_key(event: dict[str, Any]) -> tuple[str, str, int]:
    """``(alert id, event, ms)``: names one row of ``alert_events`` for any destination."""
    return str(event["alert_id"]), str(event["event"]), epoch_millis(as_utc(event["at"]))


def _in_order(*batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The notified events of ``batches``, each once, in the order they were raised."""
    unique: dict[tuple[str, str, int], dict[str, Any]] = {}
    for batch in batches:
        for event in batch:
            if event["event"] in NOTIFIED_EVENTS:
                unique.setdefault(_event_key(event), event)
    return sorted(unique.values(), key=lambda e: (as_utc(e["at"]), _EVENT_ORDER[str(e["event"])]))


def _held_by(
    notification: Notification, acknowledgements: list[dict[str, Any]] | None
) -> Notification:
    """``notification`` naming the holder of its alert, the last of ``acknowledgements``."""
    if not acknowledgements:
        return notification
    holder = acknowledgements[-1]
    return replace(
        notification,
        acknowledged_by=holder["by"],
        acknowledged_at=datetime.fromisoformat(holder["at"]),
        ack_note=holder["note"],
    )


def _matching_silence(
    silences: list[dict[str, Any]], notification: Notification
) -> dict[str, Any] | None:
    kinds = notification.kinds or (notification.kind,)
    return covering_silence(
        silences, notification.flow, notification.target, kinds, notification.categories
    )


__all__ = [
    "HttpRequest",
    "Notifier",
    "DestinationWorker",
    "RetryPolicy",
    "Withheld",
    "make_destination",
]
