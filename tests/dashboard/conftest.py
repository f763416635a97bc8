"""The collector fixtures, for pages that read a running collector."""

from tests.collector.conftest import collector_settings, running_collector  # noqa: F401 - pytest finds fixtures by name
