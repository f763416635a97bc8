"""Fixtures of the dashboard tests: the test store shared as the dashboard process shares its
own, and the collector fixtures for pages that read a running collector."""

import pytest
import streamlit as st

from seamwatch.runtime import share_store
from tests.collector.conftest import collector_settings, running_collector  # noqa: F401 - pytest finds fixtures by name


@pytest.fixture
def shared(store):
    """The test store, registered as the all-in-one process registers its own."""
    st.cache_data.clear()
    st.cache_resource.clear()
    share_store(store)
    yield store
    share_store(None)
    st.cache_data.clear()
    st.cache_resource.clear()
