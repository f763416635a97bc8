"""Fixtures of the alert command and route tests."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from typer.testing import CliRunner

from detectors.alerts_api import routes


@pytest.fixture
def cli(store, monkeypatch, tmp_path):
    """A runner over ``store``'s database, from a folder that holds no store."""
    monkeypatch.setenv("SEAMWATCH_DATABASE", store.database)
    monkeypatch.delenv("SEAMWATCH_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


@pytest.fixture
def client(store):
    """A client of the alert routes over ``store``."""
    return TestClient(Starlette(routes=routes(store)), raise_server_exceptions=False)
