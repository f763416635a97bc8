"""A store of the previous version gains the alerts' money by currency in place, losing nothing.

Schema version 24 adds ``money_by_currency`` to ``alerts``. A store made by the version before
holds alerts without it; migrating must keep every row (every version of every alert) and
its values, on the embedded store and on a ClickHouse server alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from detectors.alert_actions import list_alerts
from detectors.lifecycle import ALERTS_TABLE, AlertBook, Signal, _alert_table
from detectors.severity import load_severity
from storage import Store, schema
from storage.schema import _alert_money_by_currency, applied_versions, migrate
from tests.older_schema import older_store
from tests.storage.test_server_store import server_port  # noqa: F401 - a fixture, found by name

PREVIOUS_VERSION = 23
CURRENCY_VERSION = 24
# alerts columns that the previous version's store did not have
LATER_COLUMNS = {"money_by_currency", "categories"}
ERRORS = Signal("error_rate", "error_rate", 8.0, 0.0, 0.5)
OPENED_AT = datetime(2025, 3, 3, 9, 5, tzinfo=UTC)


@pytest.fixture(params=["embedded", "server"])
def previous_store(request, chdb_data_dir, monkeypatch) -> Iterator[Store]:
    """A new database migrated only as far as the version before the currencies."""

    def applied(migration):
        return migration.version <= PREVIOUS_VERSION

    with older_store(request, chdb_data_dir, monkeypatch, applied) as store:
        assert max(applied_versions(store)) == PREVIOUS_VERSION
        yield store


def _store_as_the_previous_version_did(store: Store) -> None:
    """Two versions of an open alert and a resolved one, written without currencies."""
    book = AlertBook(store)
    ongoing = book.open("billing.invoice-post", "erp", "Invoice", OPENED_AT, ERRORS)
    later = OPENED_AT + timedelta(minutes=1)
    book.observe(ongoing, later, ERRORS, 12, 12, 4321.0, "422 invalid tax code")
    over = book.open("usage.usage-post", "erp", "UsageRecord", OPENED_AT, ERRORS)
    book.resolve(over, OPENED_AT + timedelta(minutes=30))
    first = _alert_table([ongoing, over])
    ongoing.updated_at = later + timedelta(minutes=1)
    second = _alert_table([ongoing])
    for rows in (first, second):
        old_columns = [name for name in rows.column_names if name not in LATER_COLUMNS]
        store.insert_arrow(ALERTS_TABLE, rows.select(old_columns))


def _rows(store: Store) -> list[tuple]:
    """Every stored version of every alert, as the previous version's columns hold it."""
    return store.query_rows(
        f"SELECT alert_id, flow, state, affected, money_at_risk, top_error, version "
        f"FROM {store.table(ALERTS_TABLE)} ORDER BY alert_id, version"
    )


def test_the_previous_versions_alerts_are_kept_and_read_as_of_unknown_currency(previous_store):
    store = previous_store
    _store_as_the_previous_version_did(store)
    before = _rows(store)
    assert len(before) == 3

    assert migrate(store) == max(m.version for m in schema.MIGRATIONS)

    assert CURRENCY_VERSION in applied_versions(store)
    assert _rows(store) == before
    maps = store.query_rows(f"SELECT money_by_currency FROM {store.table(ALERTS_TABLE)}")
    assert [dict(value) for (value,) in maps] == [{}, {}, {}]
    listed = {alert["flow"]: alert for alert in list_alerts(store, load_severity(), "all")}
    ongoing = listed["billing.invoice-post"]
    assert ongoing["money_at_risk"] == 4321.0
    assert ongoing["money_by_currency"] == [{"currency": None, "amount": 4321.0}]
    # never taken as the reporting currency: left out of the priority, and said so
    assert ongoing["money_text"] == "4,321.00 (currency unknown) (not converted to EUR)"
    assert ongoing["money_at_risk_reporting"] == 0.0
    assert ongoing["money_not_converted"] == [None]
    assert listed["usage.usage-post"]["money_text"] == "none"


def test_the_runner_writes_an_open_alerts_currencies_after_the_migration(previous_store):
    store = previous_store
    _store_as_the_previous_version_did(store)
    migrate(store)

    book = AlertBook(store)
    alert = book.load_open()[("billing.invoice-post", "erp")]
    assert alert.money_by_currency == {}
    # after a restart the runner counts the split again from the spans, then writes it
    book.observe(alert, OPENED_AT + timedelta(minutes=3), ERRORS, 1, 1, 1000.0, "")
    alert.money_by_currency = {"EUR": 4321.0, "JPY": 1000.0}
    book.flush()

    again = AlertBook(store).load_open()[("billing.invoice-post", "erp")]
    assert again.money_by_currency == {"EUR": 4321.0, "JPY": 1000.0}
    [listed] = list_alerts(store, load_severity(), "open")
    assert listed["money_at_risk"] == 5321.0
    assert listed["money_text"] == "4,321.00 EUR + 1,000 JPY (mixed currencies) ≈ 4,327.20 EUR"


def test_the_migration_run_again_changes_nothing(previous_store):
    # an interrupted migration runs once more at the next start
    store = previous_store
    _store_as_the_previous_version_did(store)
    migrate(store)
    before = _rows(store)

    for statement in _alert_money_by_currency(store, None):
        store.command(statement)

    assert _rows(store) == before
