"""Data access for the dashboard pages: the store and cached query results.

Nothing here connects at import time. The store is opened on the first call of
:func:`get_store` and kept for the life of the server process.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import queries
from seamwatch.runtime import shared_settings, shared_store
from seamwatch.settings import Settings, load_settings
from storage import Store, open_store
from storage.pending import PendingServerStore

# Shorter than the page's refresh interval, so that every refresh reads fresh rows while
# viewers who refresh at the same moment share one query.
QUERY_TTL_SECONDS = 5

_LOOPBACK_FOR_WILDCARD = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


@st.cache_resource(show_spinner=False)
def get_store() -> Store:
    """The store of this process.

    In the all-in-one process (``seamwatch up``) the receiver has registered its store, and
    the dashboard must use that one: chDB lets a single process open the data directory.
    Run on its own, the dashboard opens the store the settings name.
    """
    return shared_store() or open_store(current_settings())


def store_notice() -> str | None:
    """What the pages show instead of themselves while the store of this process waits for
    its ClickHouse server (which did not answer at start); None once the store is open."""
    store = shared_store()
    if not isinstance(store, PendingServerStore) or store.is_open:
        return None
    if store.refusal is not None:
        return f"{store.refusal} Seamwatch stops: correct SEAMWATCH_CLICKHOUSE_URL."
    reason = store.last_outage or f"the ClickHouse server at {store.address} does not answer"
    return (
        f"Waiting for the store: {reason}. Seamwatch keeps trying, and this page shows the "
        "data once the server answers."
    )


def current_settings() -> Settings:
    """The settings of the process serving the dashboard, flags included when it has them."""
    return shared_settings() or load_settings()


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def flow_summary(time_range_key: str) -> pd.DataFrame:
    """Per-flow totals over the time range named by ``time_range_key`` (e.g. ``"1h"``)."""
    return queries.flow_summary(get_store(), queries.TIME_RANGES[time_range_key])


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def flow_series(time_range_key: str) -> pd.DataFrame:
    """Per-flow, per-bucket series over the time range named by ``time_range_key``."""
    return queries.flow_series(get_store(), queries.TIME_RANGES[time_range_key])


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def has_spans() -> bool:
    """True once the store holds any span."""
    return queries.has_spans(get_store())


def otlp_traces_url() -> str:
    """Where an OpenTelemetry exporter on this machine should send traces."""
    return collector_url() + "/v1/traces"


def collector_url() -> str:
    """Base URL of this installation's OTLP/HTTP receiver (which also serves /metrics)."""
    settings = current_settings()
    if settings.collector_url:
        return settings.collector_url.rstrip("/")
    host = _LOOPBACK_FOR_WILDCARD.get(settings.otlp_http_host, settings.otlp_http_host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.otlp_http_port}"
