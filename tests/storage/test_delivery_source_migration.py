"""A delivery log of the previous version gains ``source_event`` in place (schema version 26),
on the embedded store and on a ClickHouse server alike: its rows read their own event, and a
restart's notifier tells from them which alert events went where."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from notify.records import _SCHEMA, DELIVERIES_TABLE, delivery_source_events, settled
from storage import Store
from storage.schema import applied_versions, migrate
from tests.older_schema import older_store
from tests.storage.test_server_store import server_port  # noqa: F401 - a fixture, found by name

SOURCE_VERSION = 26
# recent: the log keeps 90 days, and an insert drops older rows
EVENT_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture(params=["embedded", "server"])
def previous_store(request, chdb_data_dir, monkeypatch) -> Iterator[Store]:
    """A new database migrated with every migration but the delivery log's source events."""

    def applied(migration):
        return migration.version != SOURCE_VERSION

    with older_store(request, chdb_data_dir, monkeypatch, applied) as store:
        assert SOURCE_VERSION not in applied_versions(store)
        yield store


def _old_delivery(store: Store, event: str, outcome: str) -> None:
    """One row of the delivery log as the previous version wrote it."""
    old_schema = _SCHEMA.remove(_SCHEMA.get_field_index("source_event"))
    row = {
        **{"at": EVENT_AT + timedelta(seconds=2), "alert_id": "a1", "event": event},
        **{"event_at": EVENT_AT, "destination": "ops", "kind": "webhook", "outcome": outcome},
        **{"attempts": 1, "http_status": 200, "reason": ""},
    }
    store.insert_arrow(DELIVERIES_TABLE, pa.Table.from_pylist([row], old_schema))


def test_a_delivery_log_of_the_previous_version_reads_its_own_events_as_their_source(
    previous_store,
):
    store = previous_store
    _old_delivery(store, "opened", "sent")
    _old_delivery(store, "resolved", "dropped")

    migrate(store)
    for statement in delivery_source_events(store, None):
        store.command(statement)  # an interrupted migration runs again without harm

    assert SOURCE_VERSION in applied_versions(store)
    millis = int(EVENT_AT.timestamp() * 1000)
    assert settled(store, EVENT_AT) == {
        ("a1", "opened", millis, "ops"),
        ("a1", "resolved", millis, "ops"),
    }
