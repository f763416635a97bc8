"""The dashboard while the ClickHouse server of its store does not answer: a notice, not a
traceback, and the pages once the server answers."""

from __future__ import annotations

import socket
import threading

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import APP_PATH
from seamwatch.runtime import share_store
from seamwatch.settings import Settings
from storage.pending import PendingServerStore, open_store_or_pending, wait_for_server
from tests.storage.clickhouse_http import serve

RUN_TIMEOUT_SECONDS = 30


@pytest.fixture
def pending(tmp_path):
    """A server store whose server is not up yet, shared as the dashboard process shares it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store, outage = open_store_or_pending(
        Settings(clickhouse_url=f"http://default:@127.0.0.1:{port}/swtest")
    )
    assert isinstance(store, PendingServerStore) and outage is not None
    st.cache_data.clear()
    st.cache_resource.clear()
    share_store(store)
    yield store, port
    share_store(None)
    store.close()
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.mark.slow
def test_the_pages_wait_with_a_notice_until_the_server_answers(pending, tmp_path):
    store, port = pending
    app = AppTest.from_file(str(APP_PATH), default_timeout=RUN_TIMEOUT_SECONDS).run()

    assert not app.exception
    assert not app.error and not app.header
    [notice] = app.warning
    assert notice.value == (
        f"Waiting for the store: the ClickHouse server at 127.0.0.1:{port} does not answer: "
        "connection refused. Seamwatch keeps trying, and this page shows the data once the "
        "server answers."
    )

    with serve(tmp_path / "server", port=port):
        assert wait_for_server(store, threading.Event(), "The dashboard shows a notice until")
        app.run()

    assert not app.exception and not app.warning
    assert app.header[0].value == "Live health"
