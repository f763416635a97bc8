"""The alert routes refuse what they cannot use with 400, and write times in UTC with a Z."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from detectors.alert_actions import active_silences, add_silence
from detectors.alerts_api import routes
from tests.detectors.test_alert_actions import record_alert

UTC_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def client(store):
    return TestClient(Starlette(routes=routes(store)), raise_server_exceptions=False)


@pytest.mark.parametrize(
    "raw_seconds",
    ["1e12", "1e400", "NaN", "Infinity", "-60", "0", "true", "false", "null", '"60"', "[60]"],
)
def test_a_silence_needs_a_finite_positive_length_of_at_most_a_year(client, store, raw_seconds):
    response = client.post(
        "/api/v1/silences",
        content=f'{{"seconds": {raw_seconds}}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("seconds must be a number of seconds above 0 and at most 31536000")
    assert active_silences(store) == []


def test_a_silence_without_seconds_says_it_is_missing(client):
    response = client.post("/api/v1/silences", json={"flow": "billing.*"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("seconds is missing")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"seconds": 60, "flow": ""}, "flow"),
        ({"seconds": 60, "target": ""}, "target"),
        ({"seconds": 60, "kind": ""}, "kind"),
        ({"seconds": 60, "flow": None}, "flow"),
        ({"seconds": 60, "flow": ["billing.*"]}, "flow"),
        ({"seconds": 60, "reason": 5}, "reason"),
        ({"seconds": 60, "by": {"x": 1}}, "by"),
        ({"seconds": 60, "flows": "billing.*"}, "'flows'"),
    ],
)
def test_a_silence_body_with_a_field_it_cannot_use_is_refused(client, store, body, field):
    response = client.post("/api/v1/silences", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]
    assert active_silences(store) == []


def test_a_silence_without_patterns_matches_any(client, store):
    response = client.post("/api/v1/silences", json={"seconds": 60})
    assert response.status_code == 200
    assert {response.json()[name] for name in ("flow", "target", "kind")} == {"*"}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"by": {"x": 1}}, "by"),
        ({"by": ""}, "by"),
        ({"by": 7}, "by"),
        ({"by": "ana", "note": ["x"]}, "note"),
        ({"by": "ana", "who": "bo"}, "'who'"),
    ],
)
def test_an_ack_body_with_a_field_it_cannot_use_is_refused(client, store, body, field):
    alert = record_alert(store, "billing.invoice-post", datetime.now(UTC))
    response = client.post(f"/api/v1/alerts/{alert.alert_id}/ack", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]
    listed = client.get("/api/v1/alerts").json()["alerts"]
    assert listed[0]["acknowledged_by"] is None


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/v1/alerts?foo=1"),
        ("GET", "/api/v1/alerts?state=all&foo=1"),
        ("GET", "/api/v1/silences?foo=1"),
        ("POST", "/api/v1/silences?foo=1"),
        ("POST", "/api/v1/silences/abc/cancel?foo=1"),
    ],
)
def test_an_unknown_query_parameter_is_refused(client, method, path):
    response = client.request(method, path, json={"seconds": 60})
    assert response.status_code == 400
    assert response.json()["error"].startswith("Unknown query parameter 'foo'")


def test_times_are_utc_with_a_z_to_the_millisecond(client, store):
    now = datetime.now(UTC)
    alert = record_alert(store, "billing.invoice-post", now - timedelta(hours=2), now)
    add_silence(store, timedelta(hours=1), flow="crm.*")

    [listed] = client.get("/api/v1/alerts", params={"state": "all"}).json()["alerts"]
    [silence] = client.get("/api/v1/silences").json()["silences"]
    created = client.post("/api/v1/silences", json={"seconds": 90}).json()
    ack = client.post(f"/api/v1/alerts/{alert.alert_id}/ack", json={"by": "ana"}).json()

    times = [listed[name] for name in ("opened_at", "updated_at", "resolved_at")]
    times += [silence["created_at"], silence["expires_at"]]
    times += [created["created_at"], created["expires_at"], ack["acknowledged_at"]]
    assert all(UTC_Z.match(text) for text in times), times
    [acknowledged] = client.get("/api/v1/alerts", params={"state": "all"}).json()["alerts"]
    assert UTC_Z.match(acknowledged["acknowledged_at"])
