"""Opening a server store in the background while its server does not answer."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import storage.pending
from seamwatch.settings import Settings
from storage.errors import StoreError, StoreUnavailable
from storage.pending import PROBE_SECONDS, PendingServerStore, open_store_or_pending
from tests.loopback_tcp import silent_server

URL = "http://default:@127.0.0.1:1/swtest"
DOWN = "the ClickHouse server at 127.0.0.1:1 does not answer: connection refused"


@pytest.fixture
def attempts(monkeypatch) -> list[float]:
    """When the store was tried, each try finding the server down; waits shortened."""
    tried: list[float] = []

    def server_down(settings: Settings, **options: object) -> None:
        tried.append(time.monotonic())
        raise StoreUnavailable(DOWN)

    monkeypatch.setattr(storage.pending, "open_store", server_down)
    monkeypatch.setattr(storage.pending, "FIRST_RETRY_SECONDS", 0.05)
    monkeypatch.setattr(storage.pending, "LONGEST_RETRY_SECONDS", 0.2)
    return tried


def test_the_server_is_tried_again_less_and_less_often_with_one_warning(attempts, caplog):
    caplog.set_level(logging.INFO, logger="storage.pending")
    store = PendingServerStore(Settings(clickhouse_url=URL))
    store.last_outage = StoreUnavailable(DOWN)  # as the first try at start found it
    store.keep_opening("The detectors start once it does")
    time.sleep(1.5)
    store.close()
    tried = len(attempts)
    time.sleep(0.5)

    gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:], strict=False)]
    assert 5 <= len(gaps) <= 20
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and max(gaps) < 0.4
    assert min(gaps[3:]) >= 0.19  # backed off to the longest wait
    assert gaps[0] < min(gaps[3:])
    assert len(attempts) == tried  # closing ends the attempts
    assert [record.getMessage() for record in caplog.records] == [
        "The ClickHouse server at 127.0.0.1:1 does not answer: connection refused. The "
        "detectors start once it does; trying again after 0.05 s, backing off to every 0.2 s."
    ]


def test_a_waiting_role_returns_as_soon_as_it_is_stopped(attempts):
    store = PendingServerStore(Settings(clickhouse_url=URL))
    store.keep_opening("The detectors start once it does")
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert store.wait_until_open(stop) is False
    assert time.monotonic() - started < 1
    store.close()


def test_a_server_that_answers_but_refuses_ends_the_wait_with_its_refusal(monkeypatch):
    refusal = StoreError("The ClickHouse server refused the connection: bad password")
    tried = []

    def refuse(settings: Settings, **options: object) -> None:
        tried.append(settings)
        raise refusal

    monkeypatch.setattr(storage.pending, "open_store", refuse)
    store = PendingServerStore(Settings(clickhouse_url=URL))
    store.keep_opening("The detectors start once it does")
    with pytest.raises(StoreError) as raised:
        store.wait_until_open(threading.Event())
    time.sleep(0.3)

    assert raised.value is refusal
    assert len(tried) == 1  # no more tries: waiting will not change a refusal
    # the collector's writer, which keeps its spool, still sees an outage
    with pytest.raises(StoreUnavailable, match="answers but cannot be opened"):
        store.query_rows("SELECT 1")
    store.close()


def test_a_port_that_accepts_but_never_answers_is_named_within_seconds():
    # the first try waited for the driver's read timeout (300 s): a command started against
    # such a port said nothing for five minutes
    opened: list[tuple[object, StoreUnavailable | None]] = []
    with silent_server() as port:
        url = f"http://default:@127.0.0.1:{port}/swtest"
        started = time.monotonic()
        attempt = threading.Thread(
            target=lambda: opened.append(open_store_or_pending(Settings(clickhouse_url=url))),
            daemon=True,
        )
        attempt.start()
        attempt.join(PROBE_SECONDS + 10)
        seconds = time.monotonic() - started
    assert opened, f"no answer within {seconds:.0f} s"
    store, outage = opened[0]
    assert isinstance(store, PendingServerStore) and not store.is_open
    assert str(outage) == (
        f"the ClickHouse server at 127.0.0.1:{port} accepted the connection but did not "
        f"answer within {PROBE_SECONDS} s"
    )
    assert seconds < PROBE_SECONDS + 3
    store.close()
