"""Getting the simulator's spans to its OTLP/HTTP receiver, and saying so when it cannot.

``receiver_problem`` checks that something accepts connections at the receiver's address,
and ``receiver_silent`` that it answers an empty export: ``seamwatch simulate`` asks both
before simulating, so a receiver that is not running, or that accepts connections and never
answers (a stopped process), is named within seconds, not after the exporter's timeout
(30 s a batch). ``PatientExporter`` sends the
batches through the OpenTelemetry OTLP/HTTP exporter. When the receiver stops accepting
connections during a run, it says so within a second, holds the batch (the simulation waits
behind it) and sends it once the receiver accepts connections again, so a receiver's restart
loses no spans. A stop while the receiver is away gives up the spans not sent yet at once,
rather than waiting out the exporter's retries; while it is there, a stop still sends
everything.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger(__name__)

CONNECT_SECONDS = 3.0  # a receiver on this machine or the next accepts within milliseconds
# A receiver that has not answered an empty export at start within this is taken for stopped;
# during a run a slow answer is waited for (the exporter's 30 s), so no span is lost.
ANSWER_SECONDS = 5.0
RETRY_SECONDS = 1.0  # how often a receiver that is away is asked again
_WATCH_SECONDS = 0.5  # how often the receiver is asked while an export is under way


def receiver_problem(url: str, timeout: float = CONNECT_SECONDS) -> str | None:
    """Why nothing accepts connections at the host and port of ``url``, in a few words
    ("connection refused", "timed out"); None when something does."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"the host name {parts.hostname} does not resolve"
    except TimeoutError:
        return f"no answer to the connection within {timeout:g} s"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()


def receiver_silent(url: str, timeout: float = ANSWER_SECONDS) -> bool:
    """True when the receiver at ``url`` accepts a connection but does not answer an empty
    OTLP/HTTP export within ``timeout``. Any answer counts, a refusal (401, 503) included: the
    exporter says what it means; other failures are left to the exporter as well."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=timeout)
    try:
        # an empty ExportTraceServiceRequest: no spans, nothing stored
        connection.request(
            "POST",
            parts.path or "/",
            body=b"",
            headers={"Content-Type": "application/x-protobuf"},
        )
        connection.getresponse().read()
    except TimeoutError:
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return False


# what to do about a receiver that does not accept connections
START_THE_RECEIVER = (
    "Start the receiver (seamwatch up, or seamwatch collector), or pass its address with "
    "--endpoint."
)
# what to do about a receiver that accepts connections and does not answer
WAKE_THE_RECEIVER = (
    "Check that the receiver there is Seamwatch's (seamwatch up, or seamwatch collector) and "
    "is not stopped or hung, or pass another address with --endpoint."
)


class PatientExporter(SpanExporter):
    """Exports through an exporter of ``make_exporter`` to ``traces_url``; while the receiver
    does not accept connections, holds the batch and asks again every second, until it does
    or ``stop`` is set. Called from one export thread at a time, as the batch processor does.

    An export under way when the receiver goes away would be retried by the OTLP exporter
    for 15 s and more: a watch asks the receiver every half second while one is under way,
    and when it no longer accepts connections, ends those retries by shutting that exporter
    down (the next export gets a new one) and drops the exporter's own lines about it."""

    def __init__(
        self,
        make_exporter: Callable[[], SpanExporter],
        traces_url: str,
        stop: threading.Event,
    ) -> None:
        self._make_exporter = make_exporter
        self._exporter = make_exporter()
        self._url = traces_url
        self._stop = stop
        self._away = False  # the receiver stopped accepting connections and is not back
        self._given_up = False  # stopped while it was away: nothing more is sent
        self._in_flight = False
        self._abandoned = False  # the exporter was shut down to end its retries
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._quiet = _DropWhile(lambda: self._abandoned)
        logging.getLogger(type(self._exporter).__module__).addFilter(self._quiet)
        threading.Thread(target=self._watch, name="simulator-receiver-watch", daemon=True).start()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Send ``spans``, waiting while the receiver is away; FAILURE when the receiver
        refuses them, or when the run stops while it is away."""
        while not self._given_up:
            problem = receiver_problem(self._url)
            if problem is None:
                self._note_back()
                result = self._send(spans)
                if result is SpanExportResult.SUCCESS:
                    return result
                problem = receiver_problem(self._url)
                if problem is None:
                    return result  # it answered and refused them: counted as failed
            self._note_away(problem)
            if self._stop.wait(RETRY_SECONDS):
                self._give_up()
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        """Shut the OTLP exporter down and end the watch."""
        self._closed.set()
        with self._lock:
            abandoned, self._abandoned = self._abandoned, True
        if not abandoned:
            self._exporter.shutdown()
        logging.getLogger(type(self._exporter).__module__).removeFilter(self._quiet)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here."""
        return True

    def _send(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            if self._abandoned:
                self._exporter = self._make_exporter()
                self._abandoned = False
            self._in_flight = True
        try:
            return self._exporter.export(spans)
        finally:
            self._in_flight = False

    def _watch(self) -> None:
        while not self._closed.wait(_WATCH_SECONDS):
            if self._in_flight and receiver_problem(self._url) is not None:
                self._abandon()

    def _abandon(self) -> None:
        """End the retries of the export under way: the receiver does not accept
        connections."""
        with self._lock:
            if not self._in_flight or self._abandoned:
                return
            self._abandoned = True
        self._exporter.shutdown()

    def _note_back(self) -> None:
        if self._away:
            self._away = False
            logger.warning("The receiver at %s accepts connections again; sending on.", self._url)

    def _note_away(self, problem: str) -> None:
        if self._away:
            return
        self._away = True
        logger.warning(
            "The receiver at %s does not accept connections (%s); the simulation waits for it "
            "and sends on once it does. %s Ctrl-C stops the run.",
            self._url,
            problem,
            START_THE_RECEIVER,
        )

    def _give_up(self) -> None:
        """Stopped while the receiver is away: send nothing more."""
        self._given_up = True
        logger.warning(
            "Stopped while the receiver at %s does not accept connections; the spans not sent "
            "yet are counted as failed.",
            self._url,
        )


class _DropWhile(logging.Filter):
    """Drops every record while ``condition()`` holds."""

    def __init__(self, condition: Callable[[], bool]) -> None:
        super().__init__()
        self._condition = condition

    def filter(self, record: logging.LogRecord) -> bool:
        return not self._condition()
