"""The JSON API and the command line give the same answers, and refuse bad input clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from typer.testing import CliRunner

from lineage.api import routes
from seamwatch.cli import app
from storage import BadValue, QueryError, StoreUnavailable
from tests.lineage.spans import START, posted, published
from tests.rows import make_span_rows

runner = CliRunner()
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(store):
    store.insert_arrow("otel_traces", make_span_rows(published("INV-1") + posted("INV-1")))
    return TestClient(Starlette(routes=routes(store)))


def test_lineage_route_answers_with_hops(client):
    response = client.get("/api/v1/lineage", params={"key": "INV-1"})

    assert response.status_code == 200
    assert response.json()["transactions"][0]["status"] == "posted"
    assert len(response.json()["hops"]) == 5


def test_reconciliation_and_kpi_routes_take_a_window(client):
    window = {"since": "2025-03-10T08:00:00Z", "until": "2025-03-10T10:00:00Z"}

    reconciliation = client.get("/api/v1/reconciliation", params=window).json()
    kpis = client.get("/api/v1/kpis", params=window).json()

    assert reconciliation["transactions"] == 1
    assert reconciliation["findings"] == []
    assert kpis["kpis"][0]["flow"] == "billing.invoice-post"
    # the same time form as every other answer, not isoformat's +00:00 with microseconds
    assert (kpis["since"], kpis["until"]) == (
        "2025-03-10T08:00:00.000Z",
        "2025-03-10T10:00:00.000Z",
    )


def test_flow_routes_read_the_rollups(client):
    window = {"since": START.isoformat(), "until": "2025-03-10T09:10:00Z"}

    flows = client.get("/api/v1/flows", params=window).json()["flows"]
    edges = client.get("/api/v1/flow-map", params=window).json()["edges"]

    assert [(flow["flow"], flow["spans"]) for flow in flows] == [("billing.invoice-post", 5)]
    assert len(edges) == 3


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/lineage", {}, "Give exactly one of key, correlation_id or trace_id (got none)."),
        ("/lineage", {"trace_id": "zz"}, "trace_id 'zz' is not a trace id"),
        ("/lineage", {"sku": "1"}, "Unknown query parameter 'sku'"),
        ("/lineage", [("key", "a"), ("key", "b")], "'key' is given more than once"),
        ("/reconciliation", {"since": "yesterday"}, "since 'yesterday' is neither a time"),
        ("/exceptions", {"limit": "1_0"}, "limit '1_0' is not a whole number from 1 to 5000."),
        ("/exceptions", {"kind": "lost"}, "kind 'lost' is not one of dropped"),
        ("/exceptions", {"limit": "0"}, "limit '0' is not a whole number from 1 to 5000."),
        # it said "limit '-1' is not a whole number", which it is
        ("/exceptions", {"limit": "-1"}, "limit '-1' is not a whole number from 1 to 5000."),
    ],
)
def test_bad_queries_get_400_with_the_reason(client, path, params, message):
    response = client.get(f"/api/v1{path}", params=params)

    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lineage"], "Give exactly one of --key, --correlation-id or --trace-id (got none)"),
        (["lineage", "--key", "a", "--trace-id", "b"], "(got --key, --trace-id)"),
        # an empty key was answered with "(got none)", as if --key had not been given
        (["lineage", "--key", ""], "--key is empty; give the value to look up."),
        (["lineage", "--trace-id", "abc"], "--trace-id 'abc' is not a trace id"),
        (["reconcile", "--since", "last tuesday"], "--since 'last tuesday' is neither a time"),
        # a duration reaching before the year 1 ended in an OverflowError's traceback
        (["reconcile", "--since", "1000000w"], "--since '1000000w' is outside the supported range"),
        # the API's words ("since (...) must be before until (...)") without the dashes
        (["reconcile", "--since", "1h", "--until", "2h"], ") must be before --until ("),
        (["bench", "lineage", "--spans", "many"], "--spans 'many' must be whole numbers"),
    ],
)
def test_cli_refuses_bad_input_with_exit_2(args, message):
    result = runner.invoke(app, args)

    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_reconcile_names_both_bad_times_in_one_round():
    # only --since was named; fixing it revealed --until
    result = runner.invoke(app, ["reconcile", "--since", "yesterday", "--until", "3000-01-01"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: --since 'yesterday' is neither a time (2025-03-10T12:00:00Z) nor a duration "
        "before now (30m, 6h, 7d).",
        "Error: --until '3000-01-01' is outside the supported range, 1678-01-01 to 2261-12-31 "
        "(UTC).",
    ]


@pytest.mark.parametrize(
    ("made", "problem"),
    [
        (lambda path: path.write_text(""), "is a file, not a folder; name a folder for the store"),
        (lambda path: None, "is no folder; create it first, or leave the option out"),
    ],
    ids=["file", "missing"],
)
def test_bench_refuses_a_tmp_dir_that_is_no_folder(tmp_path, made, problem):
    # the temporary folder's making ended in a traceback
    where = tmp_path / "scratch"
    made(where)
    result = runner.invoke(app, ["bench", "lineage", "--spans", "1000", "--tmp-dir", str(where)])

    assert result.exit_code == 2
    assert result.stderr == f"Error: --tmp-dir {where} {problem}.\n"


def run_cli(*args, data_dir):
    env = {**os.environ, "SEAMWATCH_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "seamwatch", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_cli_prints_the_same_json_as_the_api(tmp_path, client):
    seed = (
        "from seamwatch.settings import load_settings; from storage import open_store; "
        "from tests.rows import make_span_rows; from tests.lineage.spans import *; "
        "s = open_store(load_settings()); "
        "s.insert_arrow('otel_traces', make_span_rows(published('INV-1') + posted('INV-1')))"
    )
    env = {**os.environ, "SEAMWATCH_DATA_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", seed], env=env, cwd=REPO_ROOT, check=True)

    result = run_cli("lineage", "--key", "INV-1", "--json", data_dir=tmp_path)
    text = run_cli("lineage", "--key", "INV-1", data_dir=tmp_path)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == client.get("/api/v1/lineage?key=INV-1").json()
    assert "billing.invoice-post INV-1 (Invoice) billing -> erp: posted" in text.stdout


@pytest.mark.slow
def test_bench_runs_tiny(tmp_path):
    result = run_cli("bench", "lineage", "--spans", "800,1600", "--json", data_dir=tmp_path)

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert [figure["spans"] for figure in figures] == [800, 1600]
    assert all(figure["lookup_index_ms"] > 0 for figure in figures)
    assert "loaded" in result.stderr


RANGE = "outside the supported range, 1678-01-01 to 2261-12-31 (UTC)."


@pytest.mark.parametrize("path", ["/flows", "/flow-map", "/reconciliation", "/kpis"])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("since", "0001-01-01T00:00:00Z"),
        ("since", "1600-01-01"),
        ("until", "2300-01-01"),
        ("until", "9999-12-31T00:00:00Z"),
    ],
)
def test_times_beyond_what_the_store_holds_get_400_naming_them(client, path, name, value):
    response = client.get(f"/api/v1{path}", params={name: value})

    assert response.status_code == 400
    assert response.json() == {"error": f"{name} {value!r} is {RANGE}"}


def test_the_first_and_last_supported_times_are_answered(client):
    window = {"since": "1678-01-01T00:00:00Z", "until": "2261-12-31T23:59:59Z"}

    for path in ("/flows", "/reconciliation", "/kpis"):
        assert client.get(f"/api/v1{path}", params=window).status_code == 200


@pytest.mark.parametrize(
    ("option", "value"),
    [("--since", "0001-01-01"), ("--since", "700000d"), ("--until", "9999-12-31")],
)
def test_cli_refuses_times_beyond_what_the_store_holds(option, value):
    result = runner.invoke(app, ["reconcile", option, value])

    assert result.exit_code == 2
    assert result.output == f"Error: {option} {value!r} is {RANGE}\n"


@pytest.mark.parametrize("name", ["key", "correlation_id", "trace_id"])
def test_a_key_longer_than_the_limit_is_refused_quoted_short(client, name):
    response = client.get("/api/v1/lineage", params={name: "a" * 1001})

    assert response.status_code == 400
    assert response.json() == {
        "error": f"{name} is 1,001 characters long; at most 1,000 are allowed (got '{'a' * 57}…')."
    }


@pytest.mark.parametrize(
    ("path", "name"), [("/kpis", "target"), ("/reconciliation", "target"), ("/flow-map", "flow")]
)
def test_a_name_longer_than_the_limit_is_refused_quoted_short(client, path, name):
    # a target of 5,000 characters was taken and echoed back whole
    response = client.get(f"/api/v1{path}", params={name: "t" * 1001})

    assert response.status_code == 400
    assert response.json() == {
        "error": f"{name} is 1,001 characters long; at most 1,000 are allowed (got '{'t' * 57}…')."
    }


def test_the_last_second_of_the_range_is_taken_whole(client):
    # 23:59:59.5 was refused as outside a range that the docs say ends on 2261-12-31
    response = client.get("/api/v1/kpis", params={"until": "2261-12-31T23:59:59.5Z"})

    assert response.status_code == 200, response.text


def test_the_api_takes_a_duration_before_now_as_the_cli_does(client):
    # "15m" was refused as not an ISO-8601 time, while reconcile --since 15m took it
    for path in ("/reconciliation", "/flows", "/kpis"):
        response = client.get(f"/api/v1{path}", params={"since": "15m"})
        assert response.status_code == 200, response.text
    answered = client.get("/api/v1/flows", params={"since": "15m"}).json()
    since = datetime.fromisoformat(answered["since"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - timedelta(minutes=15) - since) < timedelta(seconds=30)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"b" * 100: "1"}, f"Unknown query parameter '{'b' * 57}…'; this route takes"),
        ({"since": "x" * 100}, f"since '{'x' * 57}…' is neither a time"),
    ],
)
def test_values_in_lineage_errors_are_quoted_short(client, params, message):
    response = client.get("/api/v1/flows", params=params)

    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


@pytest.mark.parametrize("option", ["--key", "--correlation-id", "--trace-id"])
def test_cli_refuses_a_key_longer_than_the_limit(option):
    result = runner.invoke(app, ["lineage", option, "a" * 1001])

    assert result.exit_code == 2
    assert result.output == (
        f"Error: {option} is 1,001 characters long; at most 1,000 are allowed "
        f"(got '{'a' * 57}…').\n"
    )


@pytest.mark.parametrize("command", [["lineage", "--key", "INV-1"], ["reconcile"]])
@pytest.mark.parametrize("made", [False, True])
def test_cli_refuses_a_data_dir_without_a_store_rather_than_make_one(tmp_path, command, made):
    where = tmp_path / "typo"
    if made:
        where.mkdir()

    result = runner.invoke(app, [*command, "--data-dir", str(where)])

    what = "no Seamwatch store" if made else "no data directory"
    assert result.exit_code == 2
    assert result.output == (
        f"Error: {what} at {where}; check --data-dir or SEAMWATCH_DATA_DIR, or create the "
        "store first by running 'seamwatch up' (with --demo for simulated data) or "
        "'seamwatch collector' there.\n"
    )
    assert list(tmp_path.rglob("*")) == ([where] if made else [])


@pytest.mark.parametrize(
    ("path", "name", "field", "nothing"),
    [
        ("/lineage", "correlation_id", "found", False),
        ("/lineage", "key", "found", False),
        ("/reconciliation", "target", "transactions", 0),
        ("/kpis", "target", "kpis", []),
        ("/flow-map", "flow", "edges", []),
    ],
)
@pytest.mark.parametrize("value", ["a\\", "a\nb", "a\tb"])
def test_a_value_with_a_backslash_or_line_break_finds_nothing_rather_than_a_503(
    client, path, name, field, nothing, value
):
    # the store read the value as an escape sequence and refused it; the API answered 503
    response = client.get(f"/api/v1{path}", params={name: value})

    assert response.status_code == 200, response.text
    assert response.json()[field] == nothing


def test_cli_lineage_of_an_id_ending_in_a_backslash_finds_no_transaction(
    store, chdb_data_dir, monkeypatch
):
    monkeypatch.setenv("SEAMWATCH_DATABASE", store.database)
    args = ["lineage", "--data-dir", str(chdb_data_dir), "--correlation-id", "x\\"]

    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    assert result.output == "No transaction found for correlation_id x\\.\n"


def test_reconcile_of_a_window_without_spans_says_it_judged_as_of_now(
    store, chdb_data_dir, monkeypatch
):
    # "(judged as of the newest span stored, <now>)" although no span was stored
    monkeypatch.setenv("SEAMWATCH_DATABASE", store.database)
    base = ["reconcile", "--data-dir", str(chdb_data_dir), "--since", "1h"]

    text = runner.invoke(app, base)
    answer = runner.invoke(app, [*base, "--json"])

    assert text.exit_code == 0, text.output
    assert "newest span" not in text.output
    assert "(judged as of now, " in text.output
    assert (
        ": no span of an integration flow stored in the window or the day before it)" in text.output
    )
    assert json.loads(answer.output)["as_of_basis"] == "now_no_span"


def test_the_reconciliation_route_says_what_it_judged_as_of(client):
    # INV-1's spans are a year and more old: nothing from a day before this window on
    recent = client.get("/api/v1/reconciliation", params={"since": "1h"}).json()
    window = {"since": "2025-03-10T08:00:00Z", "until": "2025-03-10T10:00:00Z"}
    stored = client.get("/api/v1/reconciliation", params=window).json()

    assert recent["as_of_basis"] == "now_no_span"
    assert stored["as_of_basis"] == "newest_span"


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (StoreUnavailable("the server does not answer"), 503, "store error: the server does"),
        (QueryError("Code: 62. DB::Exception: Syntax error"), 500, "store error: Code: 62."),
        (
            BadValue("limit", "UInt64"),
            400,
            "the store cannot read the value of 'limit' as UInt64.",
        ),
    ],
)
def test_only_a_store_that_is_down_is_answered_503(
    client, store, monkeypatch, error, status, message
):
    # every store error was a 503, which clients retry, also when the request itself was bad
    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(store, "query_df", refuse)
    monkeypatch.setattr(store, "query_rows", refuse)

    response = client.get("/api/v1/lineage", params={"key": "INV-1"})

    assert response.status_code == status
    assert response.json()["error"].startswith(message)
