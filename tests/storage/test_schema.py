"""Migrations run once each, in order, whatever ranges features number them in."""

from __future__ import annotations

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
