"""A store made before silences of one category takes them after an in-place migration, on
the embedded store and on a ClickHouse server (the HTTP interface over chDB of the suite)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from detectors.alert_actions import (
    _SILENCE_SCHEMA,
    SILENCES_TABLE,
    active_silences,
    add_silence,
    list_alerts,
)
from detectors.lifecycle import _ALERT_SCHEMA, ALERTS_TABLE, AlertBook, Signal
from detectors.severity import load_severity
from storage import Store, migrate
from storage import schema as schema_module
from storage.embedded import EmbeddedStore
from storage.schema import applied_versions
from storage.server import ServerStore
from tests.storage.clickhouse_http import serve

CATEGORY_VERSION = 25
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("clickhouse-http")) as port:
        yield f"http://default:@127.0.0.1:{port}"


@pytest.fixture(params=["embedded", "server"])
def previous_store(
    request: pytest.FixtureRequest, chdb_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    """A database migrated as the version before category silences left it."""
    database = f"previous_{uuid.uuid4().hex[:12]}"
    if request.param == "embedded":
        store: Store = EmbeddedStore(chdb_data_dir, database=database)
    else:
        store = ServerStore(f"{request.getfixturevalue('server_url')}/{database}", database)
    earlier = [m for m in schema_module.MIGRATIONS if m.version < CATEGORY_VERSION]
    with monkeypatch.context() as patched:
        patched.setattr(schema_module, "MIGRATIONS", earlier)
        migrate(store)
    try:
        yield store
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
        store.close()


def _without(schema: pa.Schema, column: str) -> pa.Schema:
    return schema.remove(schema.get_field_index(column))


def _old_alert(store: Store, flow: str, signal: str, kind: str) -> None:
    """An open alert as the previous version wrote it: no list of categories."""
    row = {
        "alert_id": f"old-{flow}",
        **{"flow": flow, "target": "erp", "business_object": "Invoice"},
        **{"kind": kind, "kinds": [kind], "state": "open", "signal": signal},
        **{"opened_at": NOW - timedelta(minutes=30), "updated_at": NOW, "resolved_at": None},
        **{"score": 9.0, "peak_score": 9.0, "baseline": 0.001, "observed": 0.2},
        **{"affected": 3, "failed": 3, "money_at_risk": 0.0, "top_error": "", "version": 1},
    }
    old_schema = _without(_ALERT_SCHEMA, "categories")
    fields = {name: row.get(name) for name in old_schema.names}
    store.insert_arrow(ALERTS_TABLE, pa.Table.from_pylist([fields], old_schema))


def _old_silence(store: Store) -> None:
    row = {
        **{"silence_id": "old-silence", "flow": "billing.credit-*", "target": "*"},
        **{"kind": "error_rate", "reason": "deploy", "created_by": "ana"},
        **{"created_at": NOW, "expires_at": NOW + timedelta(hours=2), "cancelled": 0},
        **{"cancelled_at": None, "version": 1},
    }
    old_schema = _without(_SILENCE_SCHEMA, "category")
    fields = {name: row.get(name) for name in old_schema.names}
    store.insert_arrow(SILENCES_TABLE, pa.Table.from_pylist([fields], old_schema))


def test_a_store_of_the_previous_version_takes_silences_of_one_category(previous_store):
    # the previous version kept no category with a silence and no categories with an alert
    store = previous_store
    _old_alert(store, "billing.invoice-post", "category:mapping", "exception_category")
    _old_alert(store, "billing.credit-post", "error_rate", "error_rate")
    _old_silence(store)

    migrate(store)
    for statement in schema_module._category_silences(store, None):
        store.command(statement)  # an interrupted migration runs again without harm

    assert CATEGORY_VERSION in applied_versions(store)
    [old] = active_silences(store, NOW)
    assert (old["kind"], old["category"]) == ("error_rate", None)
    mapping = add_silence(store, timedelta(hours=1), kind="category:mapping", now=NOW)
    listed = {a["flow"]: a for a in list_alerts(store, load_severity(), now=NOW)}
    # an alert stored before reads the category of its peak, the one it was known by
    assert listed["billing.invoice-post"]["categories"] == ["mapping"]
    assert listed["billing.invoice-post"]["silenced_by"] == mapping["silence_id"]
    assert (
        listed["billing.credit-post"]["categories"],
        listed["billing.credit-post"]["silenced_by"],
    ) == (
        [],
        "old-silence",
    )


def test_an_alert_of_the_previous_version_goes_on_listing_the_categories_that_join_it(
    previous_store,
):
    store = previous_store
    _old_alert(store, "billing.invoice-post", "category:mapping", "exception_category")
    migrate(store)

    book = AlertBook(store)
    alert = book.load_open()[("billing.invoice-post", "erp")]
    timeout = Signal("exception_category", "category:timeout", 5.0, 0.001, 0.05)
    book.escalate(alert, NOW + timedelta(minutes=1), timeout)
    book.flush()

    [listed] = list_alerts(store, load_severity(), now=NOW)
    assert listed["categories"] == ["mapping", "timeout"]
