"""A restarted demo continues after the stored history instead of replaying the week."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from seamwatch.settings import Settings
from seamwatch.stack import plan_demo_resume
from tests.rows import make_span_rows


def test_empty_store_starts_from_scratch(store, tmp_path: Path):
    resume = plan_demo_resume(store, Settings(data_dir=tmp_path))
    assert (resume.history_end, resume.key_space) == (None, 0)


def test_each_restart_continues_after_history_with_a_new_key_space(store, tmp_path: Path):
    latest = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    store.insert_arrow(
        "otel_traces",
        make_span_rows(
            [
                {"service": "erp", "timestamp": latest - timedelta(hours=1)},
                {"service": "crm", "timestamp": latest},
                {"service": "not-simulated", "timestamp": latest + timedelta(days=1)},
            ]
        ),
    )
    settings = Settings(data_dir=tmp_path)

    first = plan_demo_resume(store, settings)
    second = plan_demo_resume(store, settings)

    assert first.history_end == latest
    assert (first.key_space, second.key_space) == (1, 2)
