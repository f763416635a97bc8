"""Free-text fields of acknowledgements and silences: limited in length, refused with control
characters in the CLI and the API, and shown on one line when stored before the limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from detectors.alert_actions import (
    _ACK_SCHEMA,
    _SILENCE_SCHEMA,
    ACKS_TABLE,
    SILENCES_TABLE,
    acknowledge,
    active_silences,
    add_silence,
)
from tests.detectors.test_alert_actions import record_alert
from tests.detectors.test_alerts_cli import _alerts, _running_seamwatch

FORGED = "ana\nAlert 123 resolved by admin"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--by", "x" * 5_000], "--by is 5,000 characters long; at most 100 are allowed"),
        (["--by", FORGED], "--by holds a line break (\\n) at character 4; "),
        (["--by", "ana", "--note", "n" * 501], "--note is 501 characters long; at most 500"),
        (["--by", "ana", "--note", "on it\x1b[2J"], "--note holds a control character (\\x1b)"),
    ],
)
def test_ack_refuses_a_long_or_multi_line_value_in_one_error_line(
    cli,
    store,
    chdb_data_dir,
    options,
    problem,
):
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    result = _alerts(cli, chdb_data_dir, "ack", alert.alert_id, *options, "--take-over")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {problem}")
    assert len(result.stderr.splitlines()) == 1 and len(result.stderr) < 300
    listed = _alerts(cli, chdb_data_dir, "--json").stdout
    assert '"acknowledged_by": null' in listed


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--reason", "r" * 501], "--reason is 501 characters long; at most 500 are allowed"),
        (["--reason", "deploy\nsilenced by admin"], "--reason holds a line break (\\n)"),
        (["--by", "ana\tbob"], "--by holds a tab (\\t) at character 4"),
    ],
)
def test_silence_refuses_a_long_or_multi_line_value_in_one_error_line(
    cli,
    store,
    chdb_data_dir,
    options,
    problem,
):
    args = ["silence", "--for", "1h", "--flow", "billing.*", *options]
    result = _alerts(cli, chdb_data_dir, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {problem}")
    assert len(result.stderr.splitlines()) == 1 and len(result.stderr) < 300
    assert active_silences(store) == []


def test_the_options_are_named_alike_when_a_running_process_is_asked(
    cli,
    chdb_data_dir,
    monkeypatch,
):
    _running_seamwatch(monkeypatch)
    result = _alerts(cli, chdb_data_dir, "ack", "a1", "--by", FORGED)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --by holds a line break (\\n) at character 4")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"by": "x" * 5_000}, "by is 5,000 characters long; at most 100 are allowed (got 'xxx"),
        ({"by": FORGED}, "by holds a line break (\\n) at character 4; "),
        ({"by": "ana", "note": "n" * 501}, "note is 501 characters long; at most 500 are"),
        ({"by": "ana", "note": "\x00"}, "note holds a control character (\\x00) at character 1"),
    ],
)
def test_the_ack_route_refuses_a_long_or_multi_line_value_with_400(client, store, body, problem):
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    response = client.post(f"/api/v1/alerts/{alert.alert_id}/ack", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith(problem) and len(error) < 300
    assert client.get("/api/v1/alerts").json()["alerts"][0]["acknowledged_by"] is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"reason": "r" * 501}, "reason is 501 characters long; at most 500 are allowed"),
        ({"reason": "a\nb"}, "reason holds a line break (\\n) at character 2"),
        ({"by": "b" * 101}, "by is 101 characters long; at most 100 are allowed"),
    ],
)
def test_the_silence_route_refuses_a_long_or_multi_line_value_with_400(
    client, store, body, problem
):
    response = client.post("/api/v1/silences", json={"seconds": 60, "flow": "b.*", **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(problem)
    assert active_silences(store) == []


@pytest.mark.parametrize(
    ("request_args", "start"),
    [
        (("GET", "/api/v1/alerts?state=" + "x" * 20_000), "state must be one of open, "),
        (("POST", "/api/v1/silences/" + "s" * 20_000 + "/cancel"), "silence id is 20,000 "),
        (("POST", "/api/v1/alerts/" + "a" * 20_000 + "/ack"), "alert id is 20,000 "),
    ],
)
def test_a_long_bad_value_is_quoted_cut_short_in_the_api(client, request_args, start):
    response = client.request(*request_args)
    error = response.json()["error"]
    assert error.startswith(start)
    assert "…'" in error and len(error) < 200


@pytest.mark.parametrize(
    "body",
    [
        {"seconds": list(range(5_000))},
        {"seconds": 60, "flow": "b.*", "reason": list(range(5_000))},
        {"seconds": 60, "x" * 20_000: 1},
    ],
)
def test_a_long_bad_body_value_is_quoted_cut_short(client, body):
    response = client.post("/api/v1/silences", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "…" in error and len(error) < 300


def test_a_long_bad_state_is_quoted_cut_short_in_the_cli(cli, chdb_data_dir):
    result = _alerts(cli, chdb_data_dir, "--state", "x" * 20_000)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --state 'xxx") and "…'" in result.stderr
    assert len(result.stderr) < 200


def _stored_before_the_limits(store, alert_id: str, by: str, note: str) -> None:
    """An acknowledgement as a store made before the limits may hold it."""
    row = {
        "alert_id": alert_id,
        "acknowledged_by": by,
        "acknowledged_at": datetime.now(UTC) - timedelta(minutes=5),
        "note": note,
    }
    store.insert_arrow(ACKS_TABLE, pa.Table.from_pylist([row], _ACK_SCHEMA))


def test_a_stored_name_with_a_line_break_is_shown_escaped(
    cli,
    store,
    chdb_data_dir,
):
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    _stored_before_the_limits(store, alert.alert_id, FORGED, "on it\nreally")

    table = _alerts(cli, chdb_data_dir).stdout
    refused = _alerts(cli, chdb_data_dir, "ack", alert.alert_id, "--by", "bob")
    taken = _alerts(cli, chdb_data_dir, "ack", alert.alert_id, "--by", "bob", "--take-over")

    assert "ack ana\\nAlert 123 resolved by admin" in table
    assert not any(line.startswith("Alert 123") for line in table.splitlines())
    assert refused.exit_code == 2 and len(refused.stderr.splitlines()) == 1
    assert "already acknowledged by ana\\nAlert 123" in refused.stderr
    assert "(on it\\nreally)" in refused.stderr
    assert len(taken.stdout.splitlines()) == 1
    assert "taking over from ana\\nAlert 123 resolved by admin" in taken.stdout


def test_a_stored_silence_with_control_characters_is_listed_on_one_line(
    cli,
    store,
    chdb_data_dir,
):
    add_silence(store, timedelta(hours=1), flow="billing.*", reason="deploy", created_by="ana")
    now = datetime.now(UTC)
    row = {
        **{name: "*" for name in ("flow", "target", "kind")},
        "silence_id": "old1",
        "flow": "crm.*",
        "category": "",
        "reason": "deploy\nold1  *  *  *  admin",
        "created_by": "bo\tb",
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
        "cancelled": 0,
        "cancelled_at": None,
        "version": 1,
    }
    store.insert_arrow(SILENCES_TABLE, pa.Table.from_pylist([row], _SILENCE_SCHEMA))

    lines = _alerts(cli, chdb_data_dir, "silences").stdout.splitlines()

    assert len(lines) == 3
    assert any(
        "bo\\tb" in line and line.endswith("deploy\\nold1  *  *  *  admin") for line in lines
    )


def test_the_actions_refuse_what_the_cli_and_api_refuse(store):
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    with pytest.raises(ValueError, match="by holds a line break"):
        acknowledge(store, alert.alert_id, FORGED)
    with pytest.raises(ValueError, match="reason is 501 characters long"):
        add_silence(store, timedelta(hours=1), flow="b.*", reason="r" * 501)


def test_a_reason_of_bytes_that_are_not_utf8_is_one_error_line(cli, store, chdb_data_dir):
    # a shell argument with the byte 0xff arrives as a lone surrogate; the CLI crashed with a
    # UnicodeEncodeError when it sent or stored it; every command now refuses it up front
    reason = b"a\xffb".decode("utf-8", "surrogateescape")
    result = _alerts(
        cli, chdb_data_dir, "silence", "--for", "1h", "--flow", "billing.*", "--reason", reason
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --reason is not UTF-8 text (got 'a\\xffb'); write it in UTF-8.\n"
    )
    assert active_silences(store) == []


@pytest.mark.parametrize(
    ("content", "headers", "problem"),
    [
        (b'{"seconds": 60, "flow": "x\xeb"}', {}, "the body is not UTF-8 text"),
        (
            b'{"seconds": 60, "flow": "x"}',
            {"Content-Type": "application/json; charset=iso-8859-1"},
            "the body must be UTF-8 JSON, got charset 'iso-8859-1'",
        ),
        (
            b"\x1f\x8b\x08\x00",
            {"Content-Encoding": "gzip"},
            "Content-Encoding 'gzip' is not taken",
        ),
        (b'{"seconds": 60, "flow": "x", "reason": "a\\ud800b"}', {}, "a lone surrogate"),
        (b"[" * 100_000, {}, "nested too deeply"),
    ],
)
def test_a_body_that_is_not_utf8_json_is_a_400_not_a_crash(
    client, store, content, headers, problem
):
    # each answered a plain-text 500 with a traceback in the log
    answer = client.post(
        "/api/v1/silences",
        content=content,
        headers={"Content-Type": "application/json", **headers},
    )
    assert answer.status_code == 400, answer.text
    assert problem in answer.json()["error"]
    assert active_silences(store) == []


@pytest.mark.parametrize("path", ["/api/v1/alerts/a%0Ab/ack", "/api/v1/silences/a%09b/cancel"])
def test_an_id_with_a_control_character_is_not_found(client, path):
    # the store refused the parameter and the API answered 503 "store error"
    answer = client.post(path, json={"by": "ana"} if "ack" in path else {})
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"].startswith("no ")


@pytest.mark.parametrize("by", ["", "   "])
def test_a_silence_by_nobody_is_refused_as_an_acknowledgement_is(cli, store, chdb_data_dir, by):
    # a blank --by was taken and listed as "-", while ack refused it
    args = ["silence", "--for", "1h", "--flow", "billing.*", "--by", by]
    result = _alerts(cli, chdb_data_dir, *args)
    assert result.exit_code == 2
    assert "is empty" in result.stderr and len(result.stderr.splitlines()) == 1
    assert active_silences(store) == []


@pytest.mark.parametrize("by", ["", "   "])
def test_the_silence_route_refuses_a_blank_by(client, store, by):
    answer = client.post("/api/v1/silences", json={"seconds": 60, "flow": "x", "by": by})
    assert answer.status_code == 400
    assert "by" in answer.json()["error"]
    assert active_silences(store) == []
