"""The live health page, run headless with Streamlit's AppTest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streamlit.testing.v1 import AppTest

from dashboard import APP_PATH
from tests.rows import make_span_rows

PAGE_PATH = APP_PATH.parent / "views" / "01_live_health.py"
RUN_TIMEOUT_SECONDS = 30


def run(script_path) -> AppTest:
    app = AppTest.from_file(str(script_path), default_timeout=RUN_TIMEOUT_SECONDS)
    return app.run()


def test_empty_store_shows_how_to_send_spans(shared):
    app = run(PAGE_PATH)

    assert not app.exception
    assert not app.error
    [empty_state] = app.info
    assert "No spans yet" in empty_state.value
    assert "http://127.0.0.1:4318/v1/traces" in empty_state.value
    assert "seamwatch up --demo" in empty_state.value


def test_old_spans_only_widen_the_range_to_the_first_one_with_spans(shared):
    old = datetime.now(UTC) - timedelta(hours=3)
    shared.insert_arrow("otel_traces", make_span_rows([{"timestamp": old}]))

    app = run(PAGE_PATH)

    assert not app.exception
    assert app.info[0].value == "No spans in the last 1 hour yet; showing the last 6 hours."
    assert app.dataframe[0].value["flow"].tolist() == ["svc:span"]
    app.segmented_control(key="live_health_time_range").set_value("6h").run()
    assert not app.info
    assert app.dataframe[0].value["flow"].tolist() == ["svc:span"]


def test_flows_are_listed_with_totals_and_charts(shared):
    now = datetime.now(UTC)
    spans = [
        {"attributes": {"integration.flow": "order-to-cash.order-submit"}, "timestamp": now},
        {"attributes": {"integration.flow": "order-to-cash.order-submit"}, "status": "Error"},
        {"service": "crm", "attributes": {"http.route": "/orders"}, "timestamp": now},
    ]
    shared.insert_arrow("otel_traces", make_span_rows(spans))

    app = run(PAGE_PATH)

    assert not app.exception
    assert not app.error
    table = app.dataframe[0].value
    assert table.set_index("flow")["derived"].to_dict() == {
        "order-to-cash.order-submit": False,
        "crm:/orders": True,
    }
    assert [metric.value for metric in app.metric] == ["2", "3", "1", "33.3%"]
    assert len(app.get("plotly_chart")) == 3


def test_store_failure_is_shown_with_its_cause(shared):
    shared.command(f"DROP TABLE {shared.table('otel_traces')} SYNC")

    app = run(PAGE_PATH)

    assert not app.exception
    [error] = app.error
    assert error.value.startswith("Cannot read spans from the store:")
    assert "otel_traces" in error.value


def test_app_titles_every_page_and_opens_live_health(shared):
    app = run(APP_PATH)

    assert not app.exception
    assert app.title[0].value == "Seamwatch"
    assert app.header[0].value == "Live health"
