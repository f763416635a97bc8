"""The JSON API refuses what a web page could send: a change from another origin, a change
not sent as JSON, and, on a loopback address, a request addressed to another name."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from collector.service import Collector
from seamwatch.api import api_routes, is_loopback_host

SILENCE = {"seconds": 60, "flow": "billing.*", "reason": "planned ERP upgrade"}


@pytest.fixture
def api(store, collector_settings) -> Iterator[str]:
    """The endpoint of a receiver serving the API on 127.0.0.1."""
    service = Collector(store, collector_settings, extra_routes=api_routes(store))
    service.start()
    try:
        yield service.endpoint
    finally:
        service.stop()


def silences(endpoint: str) -> list[dict]:
    return httpx.get(f"{endpoint}/api/v1/silences").json()["silences"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_change_from_a_page_of_another_origin_is_refused(api, content_type):
    # a page could POST this without the browser asking first: it silenced every alert
    answer = httpx.post(
        f"{api}/api/v1/silences",
        content=json.dumps(SILENCE),
        headers={"Content-Type": content_type, "Origin": "http://pages.example"},
    )
    assert answer.status_code == 403
    assert "another origin ('http://pages.example')" in answer.json()["error"]
    # the dashboard has no controls for either: the advice named it
    assert "'seamwatch alerts ack'" in answer.json()["error"]
    assert "dashboard" not in answer.json()["error"]
    assert silences(api) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_change_not_sent_as_json_is_refused(api, content_type):
    answer = httpx.post(
        f"{api}/api/v1/silences",
        content=json.dumps(SILENCE),
        headers={"Content-Type": content_type},
    )
    assert answer.status_code == 415
    assert answer.json() == {
        "error": "Send the body as JSON with Content-Type: application/json "
        f"(got Content-Type {content_type!r})."
    }
    assert silences(api) == []


def test_a_body_without_a_content_type_is_refused(api):
    answer = httpx.post(f"{api}/api/v1/silences", content=json.dumps(SILENCE).encode())
    assert answer.status_code == 415
    assert "(got no Content-Type)" in answer.json()["error"]


@pytest.mark.parametrize("origin", [None, "same"])
def test_json_from_a_script_or_the_api_s_own_origin_is_taken(api, origin):
    headers = {"Origin": api} if origin == "same" else {}
    answer = httpx.post(f"{api}/api/v1/silences", json=SILENCE, headers=headers)
    assert answer.status_code == 200, answer.text
    assert [s["reason"] for s in silences(api)] == ["planned ERP upgrade"]


@pytest.mark.parametrize("path", ["/api/v1/alerts", "/api/v1/alerts/"])
def test_a_loopback_api_answers_loopback_names_only(api, path):
    # a page whose domain is made to resolve to 127.0.0.1 sends its own name as Host; the
    # trailing-slash redirect built its Location from that name
    port = api.rsplit(":", 1)[1]
    answer = httpx.get(f"{api}{path}", headers={"Host": f"pages.example:{port}"})
    assert answer.status_code == 403
    assert "not to 'pages.example:" in answer.json()["error"]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert httpx.get(f"{api}/api/v1/alerts", headers={"Host": host}).status_code == 200


def test_traces_are_not_asked_for_a_loopback_name(api):
    # OTLP clients in containers address the receiver by a service name
    answer = httpx.post(
        f"{api}/v1/traces",
        content=b"{}",
        headers={"Host": "collector:4318", "Content-Type": "application/json"},
    )
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1:4318", True),
        ("127.1.2.3", True),
        ("localhost:8501", True),
        ("app.localhost", True),
        ("[::1]:4318", True),
        ("::1", True),
        ("LOCALHOST", True),
        ("10.0.0.5:4318", False),
        ("pages.example", False),
        ("localhost.pages.example", False),
        ("[::ffff:10.0.0.1]:80", False),
        ("", False),
    ],
)
def test_loopback_host_names(host, loopback):
    assert is_loopback_host(host) is loopback


@pytest.fixture
def guarded(store):
    """The API behind its guard, as the loopback API server serves it."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.testclient import TestClient

    from seamwatch.api import ApiGuard

    app = Starlette(
        routes=api_routes(store), middleware=[Middleware(ApiGuard, token=None, loopback_only=True)]
    )
    return TestClient(app, base_url="http://127.0.0.1")


EVERY_ROUTE = [
    ("GET", "/api/v1"),
    ("GET", "/api/v1/lineage"),
    ("GET", "/api/v1/flows"),
    ("GET", "/api/v1/flow-map"),
    ("GET", "/api/v1/reconciliation"),
    ("GET", "/api/v1/exceptions"),
    ("GET", "/api/v1/kpis"),
    ("GET", "/api/v1/alerts"),
    ("GET", "/api/v1/silences"),
    ("POST", "/api/v1/silences"),
    ("POST", "/api/v1/alerts/a1/ack"),
    ("POST", "/api/v1/silences/s1/cancel"),
]


NOT_UTF8 = [
    (
        "key=INV-%ff%fe",
        "Query parameter 'key' is not UTF-8 text (got 'INV-\\xff\\xfe'); "
        "percent-encode its value as UTF-8.",
    ),
    (
        "state=open&st%e9te=all",
        "A query parameter name ('st\\xe9te') is not UTF-8 text; "
        "percent-encode names and values as UTF-8.",
    ),
]


@pytest.mark.parametrize(("method", "path"), EVERY_ROUTE)
@pytest.mark.parametrize(("query", "message"), NOT_UTF8)
def test_a_query_that_is_not_utf8_is_refused_naming_its_parameter(
    guarded, method, path, query, message
):
    answer = guarded.request(method, f"{path}?{query}")

    assert answer.status_code == 400
    assert answer.json() == {"error": message}


def test_a_query_in_utf8_passes_the_guard(guarded):
    answer = guarded.get("/api/v1/lineage?key=F%C3%A9-1")

    assert answer.status_code == 200
    assert answer.json()["query"] == {"key": "Fé-1"}


PATH_NOT_UTF8 = [
    ("/api/v1/alerts/%FF%FE/ack", "{alert_id}", "\\xff\\xfe"),
    ("/api/v1/alerts/INV-%e9/ack", "{alert_id}", "INV-\\xe9"),
    ("/api/v1/silences/%ff/cancel", "{silence_id}", "\\xff"),
]


@pytest.mark.parametrize(("path", "segment", "shown"), PATH_NOT_UTF8)
def test_a_path_segment_that_is_not_utf8_is_refused_naming_it(guarded, path, segment, shown):
    # it was read as U+FFFD and answered "no alert with id"
    answer = guarded.post(path, json={"by": "ana"})

    assert answer.status_code == 400
    assert answer.json() == {
        "error": f"Path segment {segment} is not UTF-8 text (got '{shown}'); "
        "percent-encode it as UTF-8."
    }


def test_a_path_the_api_does_not_have_is_refused_for_its_bytes_too(guarded):
    answer = guarded.get("/api/v1/al%ffrts")

    assert answer.status_code == 400
    assert answer.json() == {
        "error": "A path segment ('al\\xffrts') is not UTF-8 text; "
        "percent-encode the path as UTF-8."
    }


def test_the_receiver_refuses_a_path_segment_that_is_not_utf8_only(api):
    refused = httpx.post(f"{api}/api/v1/alerts/%FF%FE/ack", json={"by": "ana"})
    in_utf8 = httpx.post(f"{api}/api/v1/alerts/F%C3%A9+1/ack", json={"by": "ana"})

    assert refused.status_code == 400
    assert refused.json()["error"].startswith("Path segment {alert_id} is not UTF-8 text")
    # a path's + is no space, as it is in a query
    assert in_utf8.status_code == 404
    assert "'Fé+1'" in in_utf8.json()["error"]
