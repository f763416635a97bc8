"""``seamwatch notify log`` and ``GET /api/v1/deliveries``: the delivery log, newest first."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from typer.testing import CliRunner

from notify.api import routes
from notify.records import Outcome, StoreRecorder
from seamwatch.api import running_endpoint
from seamwatch.cli import app
from seamwatch.times import utc_text
from tests.detectors.test_alerts_cli import _detectors_running

REPOSITORY = Path(__file__).resolve().parents[2]
REFUSED = "destination 'finance' (slack at 127.0.0.1) answered HTTP 503: busy"


def record_deliveries(store, now: datetime) -> None:
    """The steps of :func:`steps` in the delivery log."""
    StoreRecorder(store).record(steps(now))


def steps(now: datetime) -> list[Outcome]:
    """Five deliveries of four alert events, most in two steps, recorded 3 hours to 10
    minutes before ``now``:

    - alert a1's opening, sent to ops on the second attempt and failed at finance;
    - alert a2's escalation, queued for ops as its opening, and its resolution, stale at
      finance;
    - alert a3's opening, queued and sent to ops in the same millisecond.
    """
    early, late, last = (now - timedelta(minutes=m) for m in (180, 30, 10))
    return [
        _step(early, "a1", "opened", early, "ops", "queued"),
        _step(early + SECOND, "a1", "opened", early, "ops", "sent", attempts=2, http_status=200),
        _step(early, "a1", "opened", early, "finance", "queued"),
        _step(
            early + 120 * SECOND,
            "a1",
            "opened",
            early,
            "finance",
            "failed",
            attempts=6,
            http_status=503,
            reason=REFUSED,
        ),
        _step(late, "a2", "opened", late, "ops", "queued", source_event="escalated"),
        _step(late, "a2", "resolved", late, "finance", "stale", reason="raised 40 min ago"),
        _step(last, "a3", "opened", late, "ops", "queued"),
        _step(last, "a3", "opened", late, "ops", "sent", attempts=1, http_status=200),
    ]


SECOND = timedelta(seconds=1)
# The steps listed, newest first: each notification's latest (a final one over queued).
LISTED = (7, 5, 4, 3, 1)


def _step(at, alert_id, event, event_at, destination, outcome, **rest) -> Outcome:
    kind = "slack" if destination == "finance" else "webhook"
    return Outcome(at, alert_id, event, event_at, destination, kind, outcome, **rest)


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def log(store, now, notify_log):
    """Runs ``seamwatch notify log`` over ``store`` holding :func:`record_deliveries`."""
    record_deliveries(store, now)
    return notify_log


@pytest.fixture
def notify_log(store, chdb_data_dir, monkeypatch, tmp_path):
    """Runs ``seamwatch notify log`` over ``store``."""
    monkeypatch.setenv("SEAMWATCH_DATABASE", store.database)
    monkeypatch.delenv("SEAMWATCH_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*args: str):
        return CliRunner().invoke(app, ["notify", "log", "--data-dir", str(chdb_data_dir), *args])

    return run


def _expected(now: datetime) -> list[dict]:
    """The listing of :func:`record_deliveries` as the API gives it, newest first."""
    listed = [steps(now)[index] for index in LISTED]
    return [
        {
            "at": utc_text(step.at),
            "destination": step.destination,
            "kind": step.kind,
            "alert_id": step.alert_id,
            "event": step.event,
            "source_event": step.source_event or step.event,
            "event_at": utc_text(step.event_at),
            "outcome": step.outcome,
            "attempts": step.attempts,
            "http_status": step.http_status,
            "reason": step.reason,
        }
        for step in listed
    ]


def test_the_log_lists_each_notification_once_newest_first_with_its_latest_step(log, now):
    listed = log("--json")

    assert listed.exit_code == 0, listed.output
    deliveries = json.loads(listed.stdout)
    assert deliveries == _expected(now)
    assert deliveries[2] == {
        "at": utc_text(now - timedelta(minutes=30)),
        "destination": "ops",
        "kind": "webhook",
        "alert_id": "a2",
        "event": "opened",
        "source_event": "escalated",
        "event_at": utc_text(now - timedelta(minutes=30)),
        "outcome": "queued",
        "attempts": 0,
        "http_status": 0,
        "reason": "",
    }


def test_the_table_shows_time_destination_alert_event_outcome_attempts_and_reason(log, now):
    table = log()

    assert table.exit_code == 0, table.output
    minute = [
        f"{moment:%Y-%m-%d %H:%M}"
        for moment in (
            now - timedelta(minutes=10),
            now - timedelta(minutes=30),
            now - timedelta(hours=3) + timedelta(minutes=2),
            now - timedelta(hours=3),
        )
    ]
    assert table.stdout.splitlines() == [
        "time (UTC)        destination  alert  event               outcome  attempts  reason",
        f"{minute[0]}  ops          a3     opened              sent     1",
        f"{minute[1]}  finance      a2     resolved            stale    0         "
        "raised 40 min ago",
        f"{minute[1]}  ops          a2     opened (escalated)  queued   0",
        f"{minute[2]}  finance      a1     opened              failed   6         {REFUSED}",
        f"{minute[3]}  ops          a1     opened              sent     2",
    ]


@pytest.mark.parametrize(
    ("filters", "rows"),
    [
        (["--alert", "a2"], [1, 2]),
        (["--alert", "A2"], [1, 2]),  # ids are hex, typed in any case
        (["--destination", "finance"], [1, 3]),
        (["--outcome", "sent"], [0, 4]),
        (["--outcome", "queued"], [2]),  # a3's queued step is settled by its sent one
        (["--since", "1h"], [0, 1, 2]),
        (["--destination", "ops", "--since", "1h"], [0, 2]),
        (["--limit", "2"], [0, 1]),
    ],
)
def test_each_filter_narrows_the_listing(log, now, filters, rows):
    listed = log("--json", *filters)

    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == [_expected(now)[index] for index in rows]


def test_since_takes_a_time_too(log, now):
    since = utc_text(now - timedelta(hours=3) + timedelta(minutes=1))

    listed = log("--json", "--since", since)

    assert [row["at"] for row in json.loads(listed.stdout)] == [
        row["at"] for row in _expected(now)[:4]
    ]


def test_an_empty_log_says_so(notify_log):
    empty = notify_log("--limit", "10")

    assert empty.exit_code == 0, empty.output
    assert empty.stdout == "No deliveries recorded.\n"


def test_a_listing_cut_by_the_limit_says_so_and_one_with_nothing_says_that(log):
    cut = log("--limit", "2")
    nothing = log("--outcome", "dropped")

    assert cut.stdout.splitlines()[-1] == ("The newest 2 shown; --limit shows more (at most 1000).")
    assert nothing.stdout == "No deliveries match.\n"


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (
            ["--outcome", "delivered"],
            "--outcome 'delivered' is not one of queued, sent, failed, dropped, stale, silenced.",
        ),
        (["--limit", "0"], "--limit '0' is not a whole number from 1 to 1000."),
        (["--limit", "ten"], "--limit 'ten' is not a whole number from 1 to 1000."),
        # int() took these: an underscore and a fullwidth digit
        (["--limit", "1_0"], "--limit '1_0' is not a whole number from 1 to 1000."),
        (["--limit", "\uff15"], "--limit '\uff15' is not a whole number from 1 to 1000."),
        (
            ["--since", "yesterday"],
            "--since 'yesterday' is neither a time (2025-03-10T12:00:00Z) nor a duration "
            "before now (30m, 6h, 7d).",
        ),
        (
            ["--destination", "on call"],
            "--destination 'on call' is not a destination name: 1 to 64 letters, digits, '.', "
            "'_' or '-' (seamwatch notify check lists them).",
        ),
        (["--alert", ""], "--alert is empty; give an alert id as 'seamwatch alerts' lists it."),
        # the limit of every id looked up, as ack and lineage refuse it; it was 100
        (
            ["--alert", "a" * 1001],
            f"--alert is 1,001 characters long; at most 1,000 are allowed (got '{'a' * 57}…').",
        ),
        # refused as every other start beyond what the store can hold; 1000000w was read as
        # "reaches back before the year 1", unlike the same refusal of reconcile
        (
            ["--since", "9999-12-31"],
            "--since '9999-12-31' is outside the supported range, 1678-01-01 to 2261-12-31 (UTC).",
        ),
        (
            ["--since", "1000000w"],
            "--since '1000000w' is outside the supported range, 1678-01-01 to 2261-12-31 (UTC).",
        ),
    ],
)
def test_a_bad_filter_is_one_line_naming_the_value_and_what_is_allowed(log, filters, message):
    refused = log(*filters)

    assert refused.exit_code == 2
    assert refused.stderr == f"Error: {message}\n"
    assert refused.stdout == ""


def test_every_bad_filter_is_named_in_one_round(log, store):
    # only the first bad option was named; fixing it revealed the next
    refused = log("--limit", "0", "--since", "xyz", "--outcome", "weird")
    assert refused.exit_code == 2
    assert refused.stderr.splitlines() == [
        "Error: --outcome 'weird' is not one of queued, sent, failed, dropped, stale, silenced.",
        "Error: --since 'xyz' is neither a time (2025-03-10T12:00:00Z) nor a duration before "
        "now (30m, 6h, 7d).",
        "Error: --limit '0' is not a whole number from 1 to 1000.",
    ]
    client = TestClient(Starlette(routes=routes(store)))
    both = client.get("/api/v1/deliveries", params={"outcome": "weird", "limit": "0"})
    assert both.json() == {
        "error": "outcome 'weird' is not one of queued, sent, failed, dropped, stale, silenced. "
        "limit '0' is not a whole number from 1 to 1000."
    }


def test_an_alert_id_as_long_as_any_key_may_be_looked_up(store, now, notify_log):
    # ids of 101 to 1,000 characters were refused here while ack and lineage took them
    long_id = "a" * 1000
    StoreRecorder(store).record([_step(now, long_id, "opened", now, "ops", "sent")])
    client = TestClient(Starlette(routes=routes(store)))

    listed = notify_log("--json", "--alert", long_id)
    served = client.get("/api/v1/deliveries", params={"alert": long_id})
    refused = client.get("/api/v1/deliveries", params={"alert": long_id + "a"})

    assert listed.exit_code == 0, listed.output
    assert [row["alert_id"] for row in json.loads(listed.stdout)] == [long_id]
    assert [row["alert_id"] for row in served.json()["deliveries"]] == [long_id]
    assert refused.status_code == 400
    assert refused.json() == {
        "error": f"alert is 1,001 characters long; at most 1,000 are allowed (got '{'a' * 57}…')."
    }


def test_entries_recorded_in_the_same_millisecond_come_in_one_order(store, now, notify_log):
    # the order of such entries was arbitrary: a resolution above or below its opening,
    # a different first entry from the CLI and the API, pages that skipped or repeated
    at, opened_at = now - timedelta(minutes=1), now - timedelta(minutes=3)
    newest_first = [
        _step(at, "b1", "resolved", opened_at + timedelta(minutes=1), "ops", "sent"),
        _step(at, "b1", "escalated", opened_at, "ops", "sent"),
        _step(at, "b2", "opened", opened_at, "finance", "sent"),
        _step(at, "b1", "opened", opened_at, "ops", "sent"),
        _step(at, "b2", "opened", opened_at, "ops", "sent"),
    ]
    StoreRecorder(store).record(newest_first[::-1])
    client = TestClient(Starlette(routes=routes(store)))
    expected = [(step.alert_id, step.event, step.destination) for step in newest_first]

    def listed(*filters: str) -> list[tuple[str, str, str]]:
        rows = json.loads(notify_log("--json", *filters).stdout)
        return [(row["alert_id"], row["event"], row["destination"]) for row in rows]

    first = client.get("/api/v1/deliveries", params={"limit": "1"}).json()["deliveries"]

    assert listed() == expected
    assert [listed("--limit", str(n)) for n in range(1, 6)] == [expected[:n] for n in range(1, 6)]
    assert [(row["alert_id"], row["event"], row["destination"]) for row in first] == expected[:1]


def test_a_data_dir_without_a_store_is_refused(tmp_path):
    refused = CliRunner().invoke(app, ["notify", "log", "--data-dir", str(tmp_path / "typo")])

    assert refused.exit_code == 2
    assert refused.output.startswith(f"Error: no data directory at {tmp_path / 'typo'};")
    assert not (tmp_path / "typo").exists()


def test_the_api_route_answers_the_same_document_and_400_for_a_bad_filter(store, now):
    record_deliveries(store, now)
    client = TestClient(Starlette(routes=routes(store)))

    everything = client.get("/api/v1/deliveries")
    failed = client.get("/api/v1/deliveries", params={"outcome": "failed", "alert": "a1"})
    recent = client.get("/api/v1/deliveries", params={"since": "1h", "limit": "1"})
    bad = client.get("/api/v1/deliveries", params={"outcome": "delivered"})
    unknown = client.get("/api/v1/deliveries", params={"state": "open"})

    expected = _expected(now)
    assert everything.json() == {"deliveries": expected}
    assert failed.json() == {"deliveries": [expected[3]]}
    assert recent.json() == {"deliveries": [expected[0]]}
    assert bad.status_code == 400
    assert bad.json() == {
        "error": "outcome 'delivered' is not one of queued, sent, failed, dropped, stale, silenced."
    }
    assert unknown.status_code == 400
    assert unknown.json()["error"].startswith("Unknown query parameter 'state'; this route takes")


def test_the_log_is_asked_of_the_running_detectors(tmp_path):
    # there was no way to read the delivery log while a process held the embedded store
    data_dir = tmp_path / "data"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    script = (
        "import sys\n"
        "from datetime import datetime\n"
        "from seamwatch.settings import load_settings\n"
        "from storage import open_store\n"
        "from tests.notify.test_delivery_log import record_deliveries\n"
        "store = open_store(load_settings(data_dir=sys.argv[1]))\n"
        "record_deliveries(store, datetime.fromisoformat(sys.argv[2]))\n"
        "store.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(data_dir), now.isoformat()],
        cwd=REPOSITORY,
        timeout=120,
        check=True,
    )
    relay = CliRunner()
    given = ["--data-dir", str(data_dir)]

    with _detectors_running(data_dir):
        listed = relay.invoke(app, ["notify", "log", "--json", "--outcome", "sent", *given])
        served = httpx.get(
            f"{running_endpoint(data_dir)}/api/v1/deliveries",
            params={"destination": "finance"},
            trust_env=False,
            timeout=30,
        )
        refused = relay.invoke(app, ["notify", "log", "--since", "2h", "--limit", "1001", *given])

    expected = _expected(now)
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == [expected[0], expected[4]]
    assert served.json() == {"deliveries": [expected[1], expected[3]]}
    assert refused.exit_code == 2
    assert refused.stderr == "Error: --limit '1001' is not a whole number from 1 to 1000.\n"
