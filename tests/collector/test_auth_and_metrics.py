"""Bearer-token authentication on both protocols, and the collector's own metrics."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import grpc
import httpx
import pytest
from pydantic import SecretStr

from collector.service import Collector
from tests.collector.conftest import shared_file
from tests.collector.test_grpc import export

TOKEN = "s3cret-token-value"


@pytest.fixture
def guarded_collector(store, collector_settings):
    collector_settings.auth_token = SecretStr(TOKEN)
    service = Collector(store, collector_settings)
    service.start()
    yield service
    service.stop()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", TOKEN, f"Basic {TOKEN}"])
def test_http_without_the_token_is_401(guarded_collector, store, authorization, caplog):
    caplog.set_level(logging.DEBUG)
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    body = shared_file("cases/01-hex-trace-id.json").read_bytes()
    response = httpx.post(f"{guarded_collector.endpoint}/v1/traces", content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == 16
    assert response.headers["www-authenticate"] == "Bearer"
    assert store.query_rows(f"SELECT count() FROM {store.table('otel_traces')}") == [(0,)]
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_http_with_the_token_is_stored(guarded_collector, store, scheme):
    headers = {"Content-Type": "application/json", "Authorization": f"{scheme} {TOKEN}"}
    body = shared_file("cases/01-hex-trace-id.json").read_bytes()
    response = httpx.post(f"{guarded_collector.endpoint}/v1/traces", content=body, headers=headers)
    assert response.status_code == 200
    assert store.query_rows(f"SELECT count() FROM {store.table('otel_traces')}") == [(1,)]


def test_grpc_without_the_token_is_unauthenticated(guarded_collector):
    target = f"127.0.0.1:{guarded_collector.grpc_port}"
    with pytest.raises(grpc.RpcError) as raised:
        export(target, b"")
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    response, _ = export(target, b"", metadata=(("authorization", f"Bearer {TOKEN}"),))
    assert response.partial_success.rejected_spans == 0


def test_metrics_count_accepted_rejected_and_refused(running_collector, store):
    endpoint = f"{running_collector.endpoint}/v1/traces"
    headers = {"Content-Type": "application/json"}
    httpx.post(
        endpoint, content=shared_file("cases/01-hex-trace-id.json").read_bytes(), headers=headers
    )
    httpx.post(
        endpoint,
        content=shared_file("cases/15-zero-trace-id-partial-success.json").read_bytes(),
        headers=headers,
    )
    httpx.post(endpoint, content=b"{not json", headers=headers)
    assert running_collector.wait_until_stored()

    text = httpx.get(f"{running_collector.endpoint}/metrics").text
    assert 'seamwatch_collector_accepted_spans_total{protocol="http"} 2.0' in text
    assert 'seamwatch_collector_rejected_spans_total{reason="invalid_span"} 2.0' in text
    assert 'seamwatch_collector_refused_requests_total{reason="malformed"} 1.0' in text
    assert "seamwatch_collector_queued_spans 0.0" in text
    assert "seamwatch_collector_spool_segments 0.0" in text
    assert "seamwatch_collector_spool_bytes 0.0" in text
    assert "seamwatch_collector_insert_seconds_count 2.0" in text


def test_json_api_asks_for_the_token_too(store, collector_settings):
    from seamwatch.api import api_routes

    collector_settings.auth_token = SecretStr(TOKEN)
    service = Collector(store, collector_settings, extra_routes=api_routes(store))
    service.start()
    try:
        url = f"{service.endpoint}/api/v1/alerts"
        refused = httpx.get(url)
        refused_post = httpx.post(f"{service.endpoint}/api/v1/silences", json={"flow": "*"})
        allowed = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        health = httpx.get(f"{service.endpoint}/health")
    finally:
        service.stop()
    assert (refused.status_code, refused_post.status_code) == (401, 401)
    assert "bearer token" in refused.json()["error"]
    assert allowed.status_code == 200
    assert health.status_code == 200


def test_the_readme_shows_the_health_answer_as_it_is(running_collector):
    # the Endpoints table said 200 `ok`; /health answers a JSON document
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if line.startswith("| Health |")]
    shown = re.search(r"200 `(\{[^`]*\})`", row)
    assert shown, row
    answer = httpx.get(f"{running_collector.endpoint}/health").json()
    for name, value in re.findall(r'"(\w+)": "(\w+)"', shown.group(1)):
        assert answer[name] == value
