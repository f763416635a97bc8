"""Migrations run once each, in order, whatever ranges features number them in."""

from __future__ import annotations

import logging

from storage import schema
from storage.schema import Migration, applied_versions, migrate


def test_tables_match_the_exporter_layout(store):
    columns = store.query_rows(
        "SELECT name, type FROM system.columns WHERE database = {d:String} "
        "AND table = 'otel_traces' ORDER BY position",
        {"d": store.database},
    )
    assert [name for name, _ in columns] == list(schema.TRACE_COLUMNS)
    types = dict(columns)
    assert types["Timestamp"] == "DateTime64(9)"
    assert types["SpanAttributes"] == "Map(LowCardinality(String), String)"
    assert types["Duration"] == "UInt64"
    assert types["Events.Timestamp"] == "Array(DateTime64(9))"


def test_a_lower_version_added_later_still_runs(store, monkeypatch):
    created = []

    def make(name):
        def statements(target, retention_days):
            created.append(name)
            return [f"CREATE TABLE IF NOT EXISTS {target.table(name)} (x UInt8) ENGINE = Memory"]

        return statements

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, Migration(9002, "b", make("b"))])
    migrate(store)
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, Migration(9001, "a", make("a"))])
    migrate(store)
    migrate(store)
    assert created == ["b", "a"]
    assert {1, 9001, 9002} <= applied_versions(store)


def test_the_log_names_each_migration_in_numeric_order(store, monkeypatch, caplog):
    # the versions 1, 10, 11, 13, 20 of the log read like a sort as text
    def empty(target, retention_days):
        return []

    later = [Migration(10_001, "ten thousand and one", empty), Migration(9_002, "nine", empty)]
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, *later])
    caplog.set_level(logging.INFO, logger="storage.schema")
    migrate(store)
    assert caplog.messages == [
        f"Schema of {store.database} migrated to version 9002: nine",
        f"Schema of {store.database} migrated to version 10001: ten thousand and one",
    ]
