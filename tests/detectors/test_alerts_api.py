"""The alert routes refuse what they cannot use with 400, and write times in UTC with a Z."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from detectors.alert_actions import active_silences, add_silence
from detectors.lifecycle import AlertBook, Signal
from tests.detectors.test_alert_actions import record_alert
from tests.detectors.test_category_silences import record_category_alert

UTC_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SLOW = Signal("latency", "latency_shift", 5.0, 800.0, 4000.0)
ERRORS = Signal("error_rate", "error_rate", 12.0, 0.01, 0.4)


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


def test_a_silence_without_patterns_is_refused_unless_it_asks_for_all(client, store):
    # a body with only a length once muted every alert without a word
    refused = client.post("/api/v1/silences", json={"seconds": 5400})
    assert refused.status_code == 400
    assert "would mute every alert" in refused.json()["error"]
    assert '"all": true' in refused.json()["error"]
    assert active_silences(store) == []

    response = client.post("/api/v1/silences", json={"seconds": 5400, "all": True})
    assert response.status_code == 200
    assert {response.json()[name] for name in ("flow", "target", "kind")} == {"*"}


@pytest.mark.parametrize("body", [{"all": "yes"}, {"all": 1}, {"all": True, "flow": "crm.*"}])
def test_all_is_a_boolean_and_takes_no_patterns(client, store, body):
    response = client.post("/api/v1/silences", json={"seconds": 60, **body})
    assert response.status_code == 400, response.text
    assert "all" in response.json()["error"]
    assert active_silences(store) == []


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


def test_a_query_parameter_given_twice_is_refused(client):
    # state=open&state=all used to list all alerts, the last value silently winning
    response = client.get("/api/v1/alerts?state=open&state=all")
    assert response.status_code == 400
    assert response.json()["error"] == (
        "Query parameter 'state' is given more than once; give it once."
    )


def test_times_are_utc_with_a_z_to_the_millisecond(client, store):
    now = datetime.now(UTC)
    resolved = record_alert(store, "billing.invoice-post", now - timedelta(hours=2), now)
    alert = record_alert(store, "crm.account-sync", now - timedelta(hours=1))
    add_silence(store, timedelta(hours=1), flow="crm.*")

    listed = client.get("/api/v1/alerts", params={"state": "all"}).json()["alerts"]
    [silence] = client.get("/api/v1/silences").json()["silences"]
    created = client.post("/api/v1/silences", json={"seconds": 90, "all": True}).json()
    ack = client.post(f"/api/v1/alerts/{alert.alert_id}/ack", json={"by": "ana"}).json()
    ended = client.post(f"/api/v1/silences/{created['silence_id']}/cancel").json()

    [was] = [item for item in listed if item["alert_id"] == resolved.alert_id]
    times = [was[name] for name in ("opened_at", "updated_at", "resolved_at")]
    times += [silence["created_at"], silence["expires_at"]]
    times += [created["created_at"], created["expires_at"], ack["acknowledged_at"]]
    times += [ended["cancelled_at"]]
    assert all(UTC_Z.match(text) for text in times), times
    listed = client.get("/api/v1/alerts", params={"state": "all"}).json()["alerts"]
    [acknowledged] = [item for item in listed if item["alert_id"] == alert.alert_id]
    assert UTC_Z.match(acknowledged["acknowledged_at"])
    assert UTC_Z.match(acknowledged["acknowledgements"][0]["at"])


def test_a_second_ack_by_someone_else_is_409_until_taken_over(client, store):
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    path = f"/api/v1/alerts/{alert.alert_id}/ack"
    first = client.post(path, json={"by": "ana", "note": "checking ERP item master"})

    second = client.post(path, json={"by": "bob"})
    taken = client.post(path, json={"by": "bob", "take_over": True})
    listed = client.get("/api/v1/alerts").json()["alerts"]

    assert first.status_code == 200
    assert second.status_code == 409
    assert "already acknowledged by ana at " in second.json()["error"]
    assert taken.status_code == 200 and taken.json()["taken_over_from"]["by"] == "ana"
    [holder] = listed
    assert (holder["acknowledged_by"], holder["ack_note"]) == ("bob", "")
    assert [a["note"] for a in holder["acknowledgements"]] == ["checking ERP item master", ""]


def test_the_ack_note_is_listed(client, store):
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    client.post(f"/api/v1/alerts/{alert.alert_id}/ack", json={"by": "ana", "note": "on it"})
    [listed] = client.get("/api/v1/alerts").json()["alerts"]
    assert (listed["acknowledged_by"], listed["ack_note"]) == ("ana", "on it")
    assert UTC_Z.match(listed["acknowledged_at"])


def test_an_alert_id_in_capitals_is_the_same_alert(client, store):
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    response = client.post(f"/api/v1/alerts/{alert.alert_id.upper()}/ack", json={"by": "ana"})
    assert response.status_code == 200, response.text
    assert response.json()["alert_id"] == alert.alert_id
    [listed] = client.get("/api/v1/alerts").json()["alerts"]
    assert listed["acknowledged_by"] == "ana"


def test_acknowledging_a_resolved_alert_is_409(client, store):
    now = datetime.now(UTC)
    alert = record_alert(store, "erp.item-sync", now - timedelta(hours=2), now)
    response = client.post(f"/api/v1/alerts/{alert.alert_id}/ack", json={"by": "ana"})
    assert response.status_code == 409
    assert response.json()["error"].endswith("; nothing to acknowledge")


def test_a_resolved_alert_acknowledged_in_upper_case_is_named_as_stored(client, store):
    # the 409 echoed the id as typed, where every other answer names it in lower case
    now = datetime.now(UTC)
    alert = record_alert(store, "erp.item-sync", now - timedelta(hours=2), now)
    response = client.post(f"/api/v1/alerts/{alert.alert_id.upper()}/ack", json={"by": "ana"})
    assert response.status_code == 409
    assert response.json()["error"].startswith(f"alert {alert.alert_id} resolved at ")


def test_ending_a_silence_twice_is_409_the_second_time(client, store):
    silence = add_silence(store, timedelta(hours=2), flow="billing.*")
    path = f"/api/v1/silences/{silence['silence_id']}/cancel"
    first, second = client.post(path), client.post(path)
    assert first.status_code == 200 and UTC_Z.match(first.json()["cancelled_at"])
    assert second.status_code == 409
    assert "had already ended" in second.json()["error"]


def test_a_silence_of_an_unseen_flow_answers_with_a_warning(client, store):
    record_alert(store, "billing.invoice-post", datetime.now(UTC))
    response = client.post("/api/v1/silences", json={"seconds": 7200, "flow": "nosuchflow"})
    assert response.status_code == 200
    [warning] = response.json()["warnings"]
    assert "'nosuchflow' matches none" in warning and "billing.invoice-post" in warning


def test_silences_say_cancelled_as_a_boolean(client, store):
    add_silence(store, timedelta(hours=1), flow="billing.*", created_by="ana")
    [silence] = client.get("/api/v1/silences").json()["silences"]
    assert silence["cancelled"] is False and silence["created_by"] == "ana"


def test_a_silence_of_one_category_is_made_listed_and_marks_its_alerts(client, store):
    # "kind": "category:mapping" was answered 400, as the CLI refused --kind category:mapping
    alert = record_category_alert(store, "billing.invoice-post", "mapping", "timeout")
    made = client.post(
        "/api/v1/silences", json={"seconds": 3600, "flow": "billing.*", "kind": "category:mapping"}
    )
    timeout = client.post("/api/v1/silences", json={"seconds": 3600, "kind": "category:timeout"})

    assert made.status_code == 200, made.json()
    assert (made.json()["kind"], made.json()["category"]) == ("exception_category", "mapping")
    listed = client.get("/api/v1/silences").json()["silences"]
    assert sorted(s["category"] for s in listed) == ["mapping", "timeout"]
    [shown] = client.get("/api/v1/alerts").json()["alerts"]
    assert shown["alert_id"] == alert.alert_id
    assert shown["categories"] == ["mapping", "timeout"]
    assert shown["silenced_by"] == made.json()["silence_id"]
    assert timeout.json()["warnings"] == []


def test_a_silence_of_no_category_is_refused(client, store):
    response = client.post("/api/v1/silences", json={"seconds": 60, "kind": "category:"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("kind 'category:' names no category")
    assert active_silences(store) == []


def test_a_listed_alert_of_several_kinds_says_which_one_its_summary_is_about(client, store):
    # "kind": "latency" beside a summary about the error rate, with nothing to tie them
    book = AlertBook(store)
    opened_at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    alert = book.open("billing.invoice-post", "erp", "Invoice", opened_at, SLOW)
    book.escalate(alert, opened_at + timedelta(minutes=1), ERRORS)
    book.flush()

    [shown] = client.get("/api/v1/alerts").json()["alerts"]

    assert (shown["kind"], shown["kinds"]) == ("latency", ["latency", "error_rate"])
    assert shown["summary"] == "error_rate (strongest): error rate 1.00% → 40.00%"


LONG_ID = "a" * 1001
LONG_ID_QUOTED = "'" + "a" * 57 + "…'"


@pytest.mark.parametrize(
    ("path", "what"),
    [
        (f"/api/v1/alerts/{LONG_ID}/ack", "alert id"),
        (f"/api/v1/silences/{LONG_ID}/cancel", "silence id"),
    ],
)
def test_an_id_longer_than_any_key_is_refused_quoted_short(client, path, what):
    answer = client.post(path, json={"by": "ana"} if "ack" in path else None)

    assert answer.status_code == 400
    assert answer.json() == {
        "error": f"{what} is 1,001 characters long; at most 1,000 are allowed "
        f"(got {LONG_ID_QUOTED})"
    }


def test_an_unknown_query_parameter_is_quoted_short(client):
    answer = client.get(f"/api/v1/alerts?{'b' * 5000}=1")

    assert answer.status_code == 400
    assert answer.json() == {
        "error": f"Unknown query parameter '{'b' * 57}…'; this route takes state."
    }


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/alerts/a1/ack", '{"by": "ana", "by": "bob"}', "by"),
        ("/api/v1/silences", '{"seconds": 60, "flow": "billing.*", "flow": "*"}', "flow"),
        ("/api/v1/silences", '{"seconds": 60, "flow": "b", "by": "ana", "by": "ana"}', "by"),
    ],
)
def test_a_field_given_twice_in_the_body_is_refused_naming_it(client, store, path, body, field):
    answer = client.post(path, content=body, headers={"Content-Type": "application/json"})

    assert answer.status_code == 400
    assert answer.json() == {
        "error": f"the body gives field '{field}' more than once; give it once"
    }
    assert active_silences(store) == []


@pytest.mark.parametrize("field", ["flow", "target", "kind"])
def test_a_silence_pattern_over_200_characters_is_refused(client, store, field):
    body = {"seconds": 60, "flow": "billing.*", field: "x" * 201, "by": "ana"}

    answer = client.post("/api/v1/silences", json=body)

    assert answer.status_code == 400
    assert answer.json() == {
        "error": f"{field} is 201 characters long; at most 200 are allowed (got '{'x' * 57}…')"
    }
    assert active_silences(store) == []


def test_a_silence_pattern_holds_any_character_a_flow_name_may(client, store):
    flow = "Ventes/é-commande: 注文 #1 [EU]*"
    pattern = flow.replace("[EU]", "[[]EU]")

    answer = client.post("/api/v1/silences", json={"seconds": 60, "flow": pattern, "by": "ana"})

    assert answer.status_code == 200
    assert [silence["flow"] for silence in active_silences(store)] == [pattern]
