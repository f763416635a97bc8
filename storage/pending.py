"""A ClickHouse server store for a command that starts while the server is down.

Under systemd or compose the database may come up after Seamwatch. Only opening the store
(connecting, creating the database, migrating the schema) needs the server, so each command
starts without it: ``PendingServerStore`` opens it at the first call that finds the server
up, and until then every call raises StoreUnavailable. The collector's writer tries it every
second and answers its clients with 503 and Retry-After meanwhile. The detectors and the
dashboard have nothing to do without the store: ``wait_for_server`` tries it with backoff in
the background and says so in the log, and ``wait_until_open`` blocks a role until it opens.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pandas as pd
import pyarrow as pa
from tenacity import Retrying, retry_if_exception_type, wait_exponential_jitter

from seamwatch.settings import Settings
from storage import open_store
from storage.base import Store
from storage.errors import NotClickHouse, StoreError, StoreUnavailable
from storage.server import server_address, server_outage

logger = logging.getLogger(__name__)

# A server that starts within seconds is taken at once; one down for hours is asked twice a
# minute, which costs nothing and keeps the wait after it comes back short.
FIRST_RETRY_SECONDS = 1.0
LONGEST_RETRY_SECONDS = 30.0
# While waiting, each attempt first asks the server whether it answers, with this connect and
# read timeout: a port that accepts connections but never answers is named within seconds,
# not after the driver's read timeout of 300 s. The store's queries keep the driver's timeouts.
PROBE_SECONDS = 5
_POLL_SECONDS = 0.2  # how soon a waiting role notices a stop


def open_store_or_pending(settings: Settings) -> tuple[Store, StoreUnavailable | None]:
    """The store the settings name, opened; or, while a ClickHouse server does not answer, a
    store that opens once it does, with the outage that kept it closed.

    Any other error (the embedded store held, a server that refuses the credentials) is raised:
    a setting or a machine to fix before starting."""
    try:
        return open_store(settings, probe_seconds=PROBE_SECONDS), None
    except StoreUnavailable as exc:
        if not settings.uses_server:
            raise
        store = PendingServerStore(settings)
        outage = server_outage(exc.__cause__, store.address) or exc
        store.last_outage = outage
        return store, outage


class PendingServerStore:
    """A server store opened at the first call that finds the server up. Safe to share between
    threads."""

    backend = "server"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.database = settings.server_database()
        self.address = server_address(settings.clickhouse_url or "")
        # why the last attempt failed; None once the store is open
        self.last_outage: StoreUnavailable | None = None
        # the server answered but refused to be opened (credentials, rights): waiting for it
        # to come up is over, and waiting longer will not change that
        self.refusal: StoreError | None = None
        self._opened: Store | None = None
        self._lock = threading.Lock()  # one opening at a time
        self._handoff = threading.Lock()  # an opened store and close() meet here
        self._settled = threading.Event()  # opened or refused
        self._closing = threading.Event()
        self._wake = threading.Event()  # ends the backoff's sleep: settled or closing

    @property
    def is_open(self) -> bool:
        """True once the server has answered and the schema is up to date."""
        return self._opened is not None

    def table(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        self._store().command(sql, parameters)

    def query_df(self, sql: str, parameters: dict[str, Any] | None = None) -> pd.DataFrame:
        return self._store().query_df(sql, parameters)

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple]:
        return self._store().query_rows(sql, parameters)

    def insert_arrow(self, table: str, data: pa.Table) -> int:
        return self._store().insert_arrow(table, data)

    def close(self) -> None:
        """Close the store, or stop opening it; returns at once even while an attempt to reach
        the server is under way (that attempt's store is closed when it ends)."""
        self._closing.set()
        self._wake.set()
        with self._handoff:
            opened = self._opened
        if opened is not None:
            opened.close()

    def wait_until_open(self, stop: threading.Event) -> bool:
        """Block until the store is open (True) or ``stop`` is set (False).

        Raises the server's refusal (a StoreError) when it answers but cannot be opened."""
        while not self._settled.wait(_POLL_SECONDS):
            if stop.is_set():
                return False
        if self._opened is None:
            assert self.refusal is not None
            raise self.refusal
        return True

    def keep_opening(self, waiting: str) -> None:
        """Try to open the store in the background, with backoff, until it opens, the server
        refuses it or the store is closed. Logs once that the server does not answer, with
        ``waiting``: what waits for it (e.g. "The detectors start once it does")."""
        outage = self.last_outage or StoreUnavailable(
            f"the ClickHouse server at {self.address} does not answer"
        )
        logger.warning(
            "%s. %s; trying again after %g s, backing off to every %g s.",
            _sentence(str(outage)),
            waiting,
            FIRST_RETRY_SECONDS,
            LONGEST_RETRY_SECONDS,
        )
        threading.Thread(
            target=self._open_with_backoff, name="seamwatch-store-opener", daemon=True
        ).start()

    def _open_with_backoff(self) -> None:
        retrying = Retrying(
            retry=retry_if_exception_type(StoreUnavailable),
            wait=wait_exponential_jitter(
                multiplier=FIRST_RETRY_SECONDS,
                max=LONGEST_RETRY_SECONDS,
                jitter=FIRST_RETRY_SECONDS,
            ),
            stop=lambda _state: self._settled.is_set() or self._closing.is_set(),
            sleep=self._wake.wait,
            reraise=True,
        )
        try:
            retrying(self._attempt)
        except StoreUnavailable:
            pass  # settled by another caller, or closed: nothing left to do
        except Exception:  # noqa: BLE001 - a thread boundary: a bug must not pass in silence
            logger.exception("Opening the store failed unexpectedly")

    def _attempt(self) -> None:
        if self._closing.is_set() or self._settled.is_set():
            return
        reason = str(self.last_outage)
        try:
            self._store()
        except StoreUnavailable as exc:
            if self.refusal is None and str(exc) != reason:
                logger.info("Still waiting: %s", exc)
            raise

    def _store(self) -> Store:
        opened = self._opened
        if opened is not None:
            return opened
        with self._lock:
            if self._opened is None:
                store = self._open()
                with self._handoff:
                    if self._closing.is_set():
                        store.close()
                        raise StoreUnavailable("the store is closed")
                    self._opened = store
                self.last_outage = None
                self._settle()
            return self._opened

    def _open(self) -> Store:
        try:
            store = open_store(self._settings, probe_seconds=PROBE_SECONDS)
        except StoreUnavailable as exc:
            outage = server_outage(exc.__cause__, self.address) or exc
            self.last_outage = outage
            raise outage from exc
        except StoreError as exc:
            # the server answers but cannot be used yet (credentials, a schema statement it
            # refuses): a refusal of the rows would set acknowledged spans aside, so the spool
            # keeps them and the writer keeps trying, naming the reason in its log
            self.refusal = exc
            self._settle()
            if isinstance(exc, NotClickHouse):
                raise StoreUnavailable(str(exc)) from exc  # it names the address itself
            raise StoreUnavailable(
                f"the ClickHouse server at {self.address} answers but cannot be opened: {exc}"
            ) from exc
        logger.info(
            "The ClickHouse server at %s answers; the schema of %s is up to date",
            self.address,
            self.database,
        )
        return store

    def _settle(self) -> None:
        self._settled.set()
        self._wake.set()


def wait_for_server(store: Store, stop: threading.Event, waiting: str) -> bool:
    """True once ``store`` is open; while its ClickHouse server does not answer, log it once
    (``waiting`` says what waits, e.g. "The detectors start once it does") and try again with
    backoff. False when ``stop`` is set first; raises a server's refusal."""
    if not isinstance(store, PendingServerStore) or store.is_open:
        return True
    store.keep_opening(waiting)
    return store.wait_until_open(stop)


def wait_until_open(store: Store, stop: threading.Event) -> bool:
    """True once ``store`` is open (at once for any store but a pending one), False when
    ``stop`` is set first; raises a server's refusal."""
    if isinstance(store, PendingServerStore):
        return store.wait_until_open(stop)
    return True


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
