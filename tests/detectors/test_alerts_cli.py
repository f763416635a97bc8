"""``seamwatch alerts`` and its sub-commands: shared options, missing stores, silence lengths."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

import seamwatch.access
from detectors.alert_actions import active_silences, add_silence
from detectors.alerts_cli import _catch_up_once, format_alerts
from detectors.runner import RunReport
from detectors.severity import DEFAULT_SEVERITY_FILE
from seamwatch.api import running_endpoint
from seamwatch.cli import app
from seamwatch.stopping import stop_on_signals
from storage import StoreLocked
from tests.detectors.test_alert_actions import record_alert
from tests.detectors.test_category_silences import record_category_alert

REPOSITORY = Path(__file__).resolve().parents[2]
SUBCOMMANDS = [
    ["silence", "--for", "1h"],
    ["silences"],
    ["ack", "some-alert"],
    ["unsilence", "some-silence"],
]


def test_every_sub_command_takes_the_data_dir_given_before_it(cli, store, chdb_data_dir, tmp_path):
    alert = record_alert(store, "billing.invoice-post", datetime.now(UTC))
    before = ["alerts", "--data-dir", str(chdb_data_dir)]

    silenced = cli.invoke(app, [*before, "silence", "--for", "2h", "--flow", "billing.*"])
    assert silenced.exit_code == 0, silenced.output
    [silence] = active_silences(store)
    listed = cli.invoke(app, [*before, "--json", "silences"])
    assert listed.exit_code == 0, listed.output
    assert [s["silence_id"] for s in json.loads(listed.output)] == [silence["silence_id"]]
    acked = cli.invoke(app, [*before, "ack", alert.alert_id, "--by", "ana"])
    assert acked.exit_code == 0, acked.output
    ended = cli.invoke(app, [*before, "unsilence", silence["silence_id"]])
    assert ended.exit_code == 0, ended.output

    assert active_silences(store) == []
    assert not (tmp_path / ".seamwatch").exists()


@pytest.mark.parametrize("option", ["--state", "--severity"])
def test_a_listing_option_before_a_sub_command_is_refused(cli, chdb_data_dir, option):
    value = "all" if option == "--state" else "sev.yaml"
    result = cli.invoke(
        app, ["alerts", option, value, "--data-dir", str(chdb_data_dir), "ack", "x"]
    )
    assert result.exit_code == 2
    assert f"Error: {option} does not apply to 'alerts ack'" in result.output


@pytest.mark.parametrize("command", [[], *SUBCOMMANDS])
@pytest.mark.parametrize("where", ["before", "after", "default"])
def test_a_missing_data_dir_is_an_error_not_a_new_store(cli, tmp_path, command, where):
    missing = tmp_path / "typo"
    given = ["--data-dir", str(missing)] if where != "default" else []
    args = ["alerts", *given, *command] if where == "before" else ["alerts", *command, *given]

    result = cli.invoke(app, args)

    expected = missing if where != "default" else tmp_path / ".seamwatch"
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: no data directory at {expected}; check --data-dir")
    assert "SEAMWATCH_DATA_DIR" in result.output
    assert not expected.exists()


@pytest.mark.parametrize(
    "length, problem",
    [
        # the limit named is the silence's, not the largest duration Python can hold
        ("999999999999999w", "is too long; at most 365 days"),
        ("1" + "0" * 400 + "s", "is too long; at most 365 days"),
        ("100000d", "'100000d' is too long; at most 365 days"),
        ("366d", "'366d' is too long; at most 365 days"),
        # shorter than a microsecond, it read "got 0:00:00"
        ("0.0000001s", "'0.0000001s': a silence must last at least a second, got 0 s"),
        ("0.5s", "'0.5s': a silence must last at least a second, got 0.5 s"),
    ],
)
def test_a_silence_too_long_or_too_short_is_one_error_line(
    cli, store, chdb_data_dir, length, problem
):
    result = cli.invoke(
        app, ["alerts", "--data-dir", str(chdb_data_dir), "silence", "--for", length]
    )
    assert result.exit_code == 2
    assert result.output.startswith("Error: --for ") and problem in result.output
    assert len(result.output.splitlines()) == 1
    assert active_silences(store) == []


def _running_seamwatch(monkeypatch) -> None:
    """The store is held by a running process whose API answers with no alerts."""

    def locked(settings, **options):
        raise StoreLocked("held by a running Seamwatch")

    monkeypatch.setattr(seamwatch.access, "open_store", locked)
    monkeypatch.setattr(seamwatch.access, "running_endpoint", lambda _: "http://127.0.0.1:9")
    monkeypatch.setattr(seamwatch.access, "get_json", lambda *_, **__: {"alerts": []})


def test_a_severity_file_the_running_process_ignores_is_warned_about(
    cli, chdb_data_dir, tmp_path, monkeypatch
):
    _running_seamwatch(monkeypatch)
    severity = tmp_path / "sev.yaml"

    result = cli.invoke(
        app, ["alerts", "--severity", str(severity), "--data-dir", str(chdb_data_dir)]
    )

    assert result.exit_code == 0, result.output
    assert f"Warning: --severity {severity} is not used" in result.stderr
    assert "SEAMWATCH_SEVERITY_FILE" in result.stderr
    assert "No open alerts" in result.stdout


@pytest.mark.parametrize(
    ("file_in_force", "advice"),
    [
        # it once told a user whose process already had the variable set to start it with it
        (
            "/etc/seamwatch/severity.yaml",
            "the file /etc/seamwatch/severity.yaml; to rank with yours, edit that file (the "
            "process reads it again), or restart the process with SEAMWATCH_SEVERITY_FILE "
            "set to yours.",
        ),
        # it said to edit the package's own severity_default.yaml, lost with the next install
        (
            str(DEFAULT_SEVERITY_FILE.resolve()),
            "the built-in severity file; to rank with yours, restart the process with "
            "SEAMWATCH_SEVERITY_FILE set to yours.",
        ),
    ],
)
def test_the_warning_names_the_severity_file_the_running_process_ranks_with(
    cli, chdb_data_dir, tmp_path, monkeypatch, file_in_force, advice
):
    _running_seamwatch(monkeypatch)
    in_force = {"file": file_in_force, "modified_at": None, "refused": None}
    answer = {"alerts": [], "severity": in_force}
    monkeypatch.setattr(seamwatch.access, "get_json", lambda *_, **__: answer)
    severity = tmp_path / "sev.yaml"
    severity.write_text(DEFAULT_SEVERITY_FILE.read_text())

    result = cli.invoke(
        app, ["alerts", "--severity", str(severity), "--data-dir", str(chdb_data_dir)]
    )

    assert result.stderr == (
        f"Warning: --severity {severity} is not used: the running Seamwatch that holds the "
        f"store ranks alerts with {advice}\n"
    )


def test_an_invalid_severity_file_the_running_process_ignores_is_named_invalid_too(
    cli, chdb_data_dir, tmp_path, monkeypatch
):
    # the warning said only that the file was not used; fixed later, it still would not be
    _running_seamwatch(monkeypatch)
    severity = tmp_path / "invalid.yaml"
    severity.write_text("tiers:\n  critical: {weight: 2}\ndefault_tier: critical\n")

    result = cli.invoke(
        app, ["alerts", "--severity", str(severity), "--data-dir", str(chdb_data_dir)]
    )

    assert result.exit_code == 0, result.output
    first, *rest = result.stderr.splitlines()
    assert first.startswith(f"Warning: --severity {severity} is not used: ")
    assert first.endswith(" It is also invalid; fix it before ranking with it:")
    assert rest[0] == "Invalid severity file:"
    assert (
        "field tiers.critical.weight: Input should be less than or equal to 1 (got 2)" in (rest[1])
    )


def test_the_severity_variable_the_running_process_ignores_is_warned_about(
    cli, chdb_data_dir, monkeypatch
):
    _running_seamwatch(monkeypatch)
    monkeypatch.setenv("SEAMWATCH_SEVERITY_FILE", "mine.yaml")

    result = cli.invoke(app, ["alerts", "--data-dir", str(chdb_data_dir)])

    assert "Warning: SEAMWATCH_SEVERITY_FILE=mine.yaml is not used" in result.stderr


def test_no_warning_without_a_severity_file_of_ones_own(cli, chdb_data_dir, monkeypatch):
    monkeypatch.delenv("SEAMWATCH_SEVERITY_FILE", raising=False)
    _running_seamwatch(monkeypatch)
    assert "Warning" not in cli.invoke(app, ["alerts", "--data-dir", str(chdb_data_dir)]).stderr


def test_no_warning_when_the_alerts_are_ranked_here(cli, chdb_data_dir):
    args = ["alerts", "--severity", str(DEFAULT_SEVERITY_FILE), "--data-dir", str(chdb_data_dir)]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr


def test_a_missing_severity_file_given_by_option_names_the_option(cli, chdb_data_dir, tmp_path):
    missing = tmp_path / "missing.yaml"
    args = ["alerts", "--severity", str(missing), "--data-dir", str(chdb_data_dir)]
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"Cannot read severity file '{missing}'" in result.stderr
    assert "Check --severity: it must name a readable severity file." in result.stderr


def _listed_alert(**changes: object) -> dict:
    """An alert as the listing gives it."""
    alert = {
        "alert_id": "369d01a12dbe25d5",
        "state": "open",
        "flow": "billing.invoice-post",
        "target": "erp",
        "kind": "exception_category",
        "kinds": ["exception_category"],
        "tier": "critical",
        "priority": 60.4,
        "priority_label": "P1",
        "opened_at": "2025-03-03T13:23:00.000Z",
        "resolved_at": None,
    }
    return {**alert, **changes}


def test_the_table_names_the_opening_kind_then_each_joined_one():
    # the joined names, cut to the column, once read "exception_category+er"; then a count
    # ("+2") left the reader to guess which kind the summary under the row was about
    alert = _listed_alert(kinds=["exception_category", "error_rate", "duplicate_posting"])
    row = format_alerts([alert]).splitlines()[1]
    assert " exception_category +error_rate +duplicate_posting " in row
    assert "+er " not in row


def test_a_category_alert_names_its_category():
    # the table said "exception_category" and left the reader to guess which one
    alert = _listed_alert(kinds=["exception_category", "error_rate"], categories=["mapping"])
    row = format_alerts([alert]).splitlines()[1]
    assert " category:mapping +error_rate " in row


def test_a_category_name_reads_whole_in_the_table():
    # it read "category:master_data…"
    alert = _listed_alert(
        kinds=["exception_category", "error_rate"], categories=["master_data_missing"]
    )
    row = format_alerts([alert]).splitlines()[1]
    assert " category:master_data_missing +error_rate " in row


def test_a_category_too_long_for_its_column_is_cut_not_the_kinds_after_it():
    alert = _listed_alert(
        kinds=["exception_category", "error_rate", "latency"], categories=["x" * 40]
    )
    row = format_alerts([alert]).splitlines()[1]
    assert f" category:{'x' * 24}… +error_rate +latency " in row


def test_the_kind_column_names_the_kind_the_summary_is_about():
    # the row read "latency" over a summary about the error rate: the column named the
    # opening kind alone, the summary the strongest signal, and neither said so
    alert = _listed_alert(
        kind="latency",
        kinds=["latency", "error_rate"],
        signal="error_rate",
        baseline=0.01,
        observed=0.4,
        top_error="HTTP 500 from erp",
    )
    _, row, summary = format_alerts([alert], width=200).splitlines()
    assert " latency +error_rate " in row
    assert (
        summary
        == "    error_rate (strongest): error rate 1.00% → 40.00%; top error: HTTP 500 from erp"
    )


def test_the_summary_names_the_category_it_is_about_among_several():
    alert = _listed_alert(
        categories=["mapping", "timeout"],
        signal="category:timeout",
        baseline=0.001,
        observed=0.2,
    )
    _, row, summary = format_alerts([alert], width=200).splitlines()
    assert " category:mapping +category:timeout " in row
    assert summary == (
        "    category:timeout (strongest): timeout failures 0.10% → 20.00% of transactions"
    )


def test_a_single_kind_alert_keeps_its_summary_as_it_was():
    alert = _listed_alert(categories=["mapping"], signal="category:mapping", baseline=0.0005)
    _, row, summary = format_alerts([{**alert, "observed": 0.26}]).splitlines()
    assert " category:mapping " in row
    assert summary == "    mapping failures 0.05% → 26.00% of transactions"


def test_a_flow_name_too_long_for_its_column_ends_with_an_ellipsis():
    alert = _listed_alert(flow="order-to-cash.order-submit-very-long-name")
    row = format_alerts([alert]).splitlines()[1]
    assert "order-to-cash.order-submit-… " in row


def test_a_folder_without_a_store_is_an_error_not_a_new_store(cli, tmp_path):
    # an existing folder (a mistyped --data-dir .) once opened as a new, empty store
    folder = tmp_path / "not-a-store"
    folder.mkdir()
    for command in (
        ["alerts", "--data-dir", str(folder)],
        ["alerts", "--data-dir", str(folder), "silences"],
    ):
        result = cli.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "no Seamwatch store at" in result.output
    assert list(folder.iterdir()) == []


def _alerts(cli, chdb_data_dir, *args: str):
    return cli.invoke(app, ["alerts", "--data-dir", str(chdb_data_dir), *args])


def test_a_second_ack_names_the_holder_and_changes_nothing(cli, store, chdb_data_dir):
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    ana = _alerts(
        cli,
        chdb_data_dir,
        "ack",
        alert.alert_id,
        "--by",
        "ana",
        "--note",
        "checking ERP item master",
    )
    bob = _alerts(cli, chdb_data_dir, "ack", alert.alert_id, "--by", "bob")
    listed = json.loads(_alerts(cli, chdb_data_dir, "--json").stdout)

    assert ana.exit_code == 0, ana.output
    assert bob.exit_code == 2
    assert f"Error: alert {alert.alert_id} is already acknowledged by ana at " in bob.stderr
    assert "--take-over" in bob.stderr
    assert (listed[0]["acknowledged_by"], listed[0]["ack_note"]) == (
        "ana",
        "checking ERP item master",
    )


def test_take_over_says_whose_acknowledgement_it_replaces(cli, store, chdb_data_dir):
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    _alerts(cli, chdb_data_dir, "ack", alert.alert_id, "--by", "ana")
    bob = _alerts(cli, chdb_data_dir, "ack", alert.alert_id, "--by", "bob", "--take-over")
    table = _alerts(cli, chdb_data_dir).stdout

    assert bob.exit_code == 0, bob.output
    assert bob.stdout.startswith(
        f"Alert {alert.alert_id} acknowledged by bob, taking over from ana"
    )
    assert "ack bob" in table and "ack ana" not in table


def test_acknowledging_a_resolved_alert_is_one_error_line(cli, store, chdb_data_dir):
    now = datetime.now(UTC)
    alert = record_alert(store, "erp.item-sync", now - timedelta(hours=2), now)
    result = _alerts(cli, chdb_data_dir, "ack", alert.alert_id, "--by", "ana")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: alert {alert.alert_id} resolved at ")
    assert result.stderr.endswith("; nothing to acknowledge\n")


def test_ids_are_taken_in_any_case(cli, store, chdb_data_dir):
    # ids are hex; one typed in capitals once gave "no alert with id"
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    acked = _alerts(cli, chdb_data_dir, "ack", alert.alert_id.upper(), "--by", "ana")
    assert acked.exit_code == 0, acked.output
    assert acked.stdout.startswith(f"Alert {alert.alert_id} acknowledged by ana")
    [listed] = json.loads(_alerts(cli, chdb_data_dir, "--json").stdout)
    assert listed["acknowledged_by"] == "ana"

    silence = add_silence(store, timedelta(hours=2), flow="billing.*")
    ended = _alerts(cli, chdb_data_dir, "unsilence", silence["silence_id"].upper())
    assert ended.exit_code == 0, ended.output
    assert ended.stdout.startswith(f"Silence {silence['silence_id']} ended at ")


def test_unsilence_twice_says_the_silence_had_already_ended(cli, store, chdb_data_dir):
    silence = add_silence(store, timedelta(hours=2), flow="billing.*")
    first = _alerts(cli, chdb_data_dir, "unsilence", silence["silence_id"])
    second = _alerts(cli, chdb_data_dir, "unsilence", silence["silence_id"])
    assert first.exit_code == 0 and first.stdout.startswith(
        f"Silence {silence['silence_id']} ended at "
    )
    assert second.exit_code == 2
    assert f"silence {silence['silence_id']} had already ended, at " in second.stderr


def test_a_silence_of_an_unknown_flow_is_kept_with_a_warning(cli, store, chdb_data_dir):
    record_alert(store, "billing.invoice-post", datetime.now(UTC))
    result = _alerts(cli, chdb_data_dir, "silence", "--for", "2h", "--flow", "nosuchflow")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Warning: flow 'nosuchflow' matches none of the 1 flows")
    assert "billing.invoice-post" in result.stderr
    assert len(active_silences(store)) == 1


def test_silencing_everything_needs_all(cli, store, chdb_data_dir):
    refused = _alerts(cli, chdb_data_dir, "silence", "--for", "1.5h")
    assert refused.exit_code == 2
    assert "would mute every alert" in refused.stderr and "--all" in refused.stderr
    assert active_silences(store) == []

    accepted = _alerts(cli, chdb_data_dir, "silence", "--for", "1.5h", "--all", "--by", "ana")
    assert accepted.exit_code == 0, accepted.output
    assert len(active_silences(store)) == 1


@pytest.mark.parametrize(
    ("option", "values"),
    [
        ("--flow", ["billing.*", "payments.*"]),
        ("--target", ["erp", "crm"]),
        ("--kind", ["category:mapping", "latency"]),
    ],
)
def test_a_silence_glob_given_twice_is_refused_not_cut_to_the_last(
    cli, store, chdb_data_dir, option, values
):
    # `--kind category:mapping --kind latency` made a silence of latency alone
    name = option.removeprefix("--")
    given = [part for value in values for part in (option, value)]
    result = _alerts(cli, chdb_data_dir, "silence", "--for", "2h", *given)

    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {option} is given twice ('{values[0]}', '{values[1]}'), and it takes one "
        f"value: only the last would count; a silence takes one {option}: give a glob that "
        f"matches every {name} meant, or make one silence for each.\n"
    )
    assert active_silences(store) == []


def test_a_data_dir_given_before_and_after_a_sub_command_is_refused(cli):
    # the sub-command's was used and the other ignored
    result = cli.invoke(app, ["alerts", "--data-dir", "one", "silences", "--data-dir", "two"])

    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --data-dir is given twice ('one', 'two'), and it takes one value: only the last "
        "would count; give --data-dir once.\n"
    )


def test_a_flow_glob_that_matches_every_name_needs_all(cli, store, chdb_data_dir):
    refused = _alerts(cli, chdb_data_dir, "silence", "--for", "5m", "--flow", "?*")
    assert refused.exit_code == 2
    assert "would mute every alert" in refused.stderr and "'?*'" in refused.stderr
    assert active_silences(store) == []


def test_the_silences_table_shows_who_created_each_in_utc(cli, store, chdb_data_dir):
    add_silence(store, timedelta(hours=2), flow="billing.*", reason="deploy", created_by="ana")
    lines = _alerts(cli, chdb_data_dir, "silences").stdout.splitlines()
    assert lines[0].split() == ["id", "flow", "target", "kind", "by", "until", "(UTC)", "reason"]
    assert " ana " in lines[1] and lines[1].endswith("deploy")
    assert "Z" not in lines[1].split("ana")[1]  # the table's time, not JSON's


def test_a_category_copied_from_the_alerts_table_silences_that_category(cli, store, chdb_data_dir):
    # --kind category:mapping, as the table shows the alert, was refused: only
    # exception_category was taken, which silenced every category of the flow
    mapping = record_category_alert(store, "billing.invoice-post", "mapping")
    timeout = record_category_alert(store, "billing.payment-post", "timeout")
    listing = _alerts(cli, chdb_data_dir).stdout
    assert "category:mapping" in listing and "category:timeout" in listing

    made = _alerts(cli, chdb_data_dir, "silence", "--for", "2h", "--kind", "category:mapping")
    table = _alerts(cli, chdb_data_dir).stdout
    silences = _alerts(cli, chdb_data_dir, "silences").stdout.splitlines()

    assert made.exit_code == 0, made.output
    [silence] = active_silences(store)
    rows = {line.split()[0]: line for line in table.splitlines()[1:] if line[:1] != " "}
    assert f"silenced {silence['silence_id']}" in rows[mapping.alert_id]
    assert "silenced" not in rows[timeout.alert_id]
    assert silences[1].split()[:4] == [silence["silence_id"], "*", "*", "category:mapping"]


def test_a_category_silence_is_listed_as_written_and_covers_the_same_name(
    cli, store, chdb_data_dir
):
    # listed as typed: the docs said "listed as tax_engine", which it never was
    alert = record_category_alert(store, "billing.invoice-post", "tax_engine")
    kind = "category:Tax Engine"
    made = _alerts(cli, chdb_data_dir, "silence", "--for", "1h", "--kind", kind)
    assert made.exit_code == 0, made.output

    [silence] = active_silences(store)
    table = _alerts(cli, chdb_data_dir, "silences").stdout.splitlines()
    assert table[1].split()[:5] == [silence["silence_id"], "*", "*", "category:Tax", "Engine"]
    listed = _alerts(cli, chdb_data_dir, "--json", "silences").stdout
    assert [(s["kind"], s["category"]) for s in json.loads(listed)] == [
        ("exception_category", "Tax Engine")
    ]
    rows = _alerts(cli, chdb_data_dir).stdout
    assert f"silenced {silence['silence_id']}" in rows and alert.alert_id in rows


def test_a_kind_naming_no_category_is_one_error_line(cli, store, chdb_data_dir):
    result = _alerts(cli, chdb_data_dir, "silence", "--for", "2h", "--kind", "category:")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: kind 'category:' names no category; give it as the alerts table shows it, "
        "e.g. category:mapping, or use exception_category for every category\n"
    )
    assert active_silences(store) == []


def test_a_typical_alerts_table_fits_a_terminal():
    # the table was once about 170 columns wide, whatever it held; each kind an alert has
    # shown is named (it was counted, "+1"), which takes a few columns more
    alert = _listed_alert(
        kinds=["exception_category", "error_rate"],
        categories=["mapping"],
        acknowledged_by="ana",
        resolved_at="2025-03-03T14:05:00.000Z",
        money_text="18,250.00 EUR",
    )
    lines = format_alerts([alert]).splitlines()
    # under 140 before the money at risk had a column of its own and every kind was named
    assert max(len(line) for line in lines) < 160
    assert "opened (UTC)" in lines[0] and "2025-03-03 13:23" in lines[1]


def test_each_alert_says_what_is_wrong_under_its_row_cut_to_fit():
    # the table had no alert text: on-call had to ask --json what was wrong
    found = (
        "23 billing.invoice-post transaction(s) posted twice to erp since the alert opened, "
        "amount 124,784.42; latest first: INV-1001885, INV-1001882, INV-1001884, INV-1001883, "
        "INV-1001880 (+18 more); also 2 failed transaction(s), amount 6,826.95"
    )
    twice = _listed_alert(kind="duplicate_posting", kinds=["duplicate_posting"], summary=found)
    mapping = _listed_alert(signal="category:mapping", baseline=0.0005, observed=0.26)
    header, row, summary, _, other = format_alerts([twice, mapping]).splitlines()

    assert len(summary) == len(header)
    assert summary == "    " + found[: len(header) - 5] + "…"
    assert other == "    mapping failures 0.05% → 26.00% of transactions"
    wide = format_alerts([twice], width=400).splitlines()
    assert wide[2] == "    " + found


def test_the_listing_from_the_store_says_what_is_wrong(cli, store, chdb_data_dir):
    alert = record_alert(store, "billing.invoice-post", datetime.now(UTC))
    given = ["alerts", "--data-dir", str(chdb_data_dir)]

    table = cli.invoke(app, given, env={"COLUMNS": "100"})
    listed = cli.invoke(app, [*given, "--json"])

    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[1].startswith(alert.alert_id)
    assert table.stdout.splitlines()[2] == "    error rate 0.00% → 50.00%"
    assert json.loads(listed.stdout)[0]["summary"] == "error rate 0.00% → 50.00%"


@pytest.mark.parametrize(
    "command", [["alerts"], ["alerts", "silences"], ["detectors", "--once"], ["up"], ["collector"]]
)
def test_a_data_dir_that_is_a_file_is_named_as_such(cli, tmp_path, command):
    # 'up' exited 1 on it, as if the machine stood in the way, where 'alerts' exited 2
    regular = tmp_path / "store.txt"
    regular.write_text("not a store")
    result = cli.invoke(app, [*command, "--data-dir", str(regular)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: Invalid settings:",
        f"  data_dir (--data-dir) = '{regular}': is a file, not a folder; name a "
        "folder for the store",
    ]
    assert regular.read_text() == "not a store"


def test_the_detectors_refuse_a_data_dir_without_a_store(cli, tmp_path):
    # they once created a new, empty store there and reported "Evaluated 0 minute(s)"
    missing = tmp_path / "a" / "path" / "that" / "does" / "not" / "exist"
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, found in ((missing, "no data directory"), (empty, "no Seamwatch store")):
        result = cli.invoke(app, ["detectors", "--once", "--data-dir", str(folder)])
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"Error: {found} at {folder}; check --data-dir")
        assert "'seamwatch up' (with --demo for simulated data) or 'seamwatch collector'" in (
            result.output
        )
        assert "Evaluated" not in result.output
    assert not (tmp_path / "a").exists()
    assert list(empty.iterdir()) == []


def test_alert_commands_ask_the_running_detectors(tmp_path):
    # they failed with "in use by another Seamwatch process" while `seamwatch detectors` ran
    data_dir = tmp_path / "data"
    alert_id = _store_with_an_alert(data_dir)
    relay = CliRunner()
    given = ["--data-dir", str(data_dir)]
    with _detectors_running(data_dir) as detectors:
        listed = relay.invoke(app, ["alerts", "--state", "all", "--json", *given])
        table = relay.invoke(app, ["alerts", *given], env={"COLUMNS": "100"})
        acked = relay.invoke(app, ["alerts", "ack", alert_id, "--by", "ana", *given])
        silenced = relay.invoke(app, ["alerts", "silence", "--for", "1h", "--all", *given])
        silences = relay.invoke(app, ["alerts", "silences", "--json", *given])
        detectors.send_signal(signal.SIGINT)
        stopped, logged = detectors.communicate(timeout=60)
    assert listed.exit_code == 0, listed.output
    [listed_alert] = json.loads(listed.stdout)
    assert listed_alert["alert_id"] == alert_id
    assert listed_alert["summary"] == "error rate 0.00% → 50.00%"
    assert table.stdout.splitlines()[2] == "    error rate 0.00% → 50.00%"
    assert acked.stdout == f"Alert {alert_id} acknowledged by ana.\n"
    assert silenced.exit_code == 0, silenced.output
    assert len(json.loads(silences.stdout)) == 1
    assert detectors.returncode == 0
    assert "Detectors stopped; minutes evaluated: none yet." in stopped
    assert "INFO    seamwatch.api_server: JSON API for the CLI on http://127.0.0.1:" in logged
    assert not (data_dir / "api-endpoint").exists()


def test_money_at_risk_names_each_currency_in_the_cli_and_the_api(tmp_path):
    # the listing and the API gave one number, euros, yen and the unknown part added up
    data_dir = tmp_path / "data"
    alert_id = _store_with_an_alert(data_dir, {"EUR": 3000.0, "JPY": 120000.0, "": 12.5})
    listing = [sys.executable, "-m", "seamwatch", "alerts", "--data-dir", str(data_dir)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SEAMWATCH_")}

    def run(*args: str) -> str:
        done = subprocess.run(
            [*listing, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**environment, "COLUMNS": "200"},
            check=True,
        )
        return done.stdout

    as_json, table = run("--json"), run()
    with _detectors_running(data_dir):
        endpoint = running_endpoint(data_dir)
        served = httpx.get(f"{endpoint}/api/v1/alerts", trust_env=False, timeout=30).json()
        relayed = run("--json")  # asked of the running process, through its API

    text = (
        "3,000.00 EUR + 120,000 JPY + 12.50 in an unknown currency (mixed currencies) "
        "≈ 3,744.00 EUR (not converted: currency unknown)"
    )
    expected = {
        "alert_id": alert_id,
        # the sum stays, for the clients that read it before; it adds currencies up
        "money_at_risk": 123012.5,
        "money_by_currency": [
            {"currency": "EUR", "amount": 3000.0},
            {"currency": "JPY", "amount": 120000.0},
            {"currency": None, "amount": 12.5},
        ],
        "money_text": text,
        # what the priority weighed: 3,000 EUR + 120,000 JPY at 0.0062 EUR, the rest left out
        "money_at_risk_reporting": 3744.0,
        "reporting_currency": "EUR",
        "money_not_converted": [None],
    }
    for alerts in (json.loads(as_json), served["alerts"], json.loads(relayed)):
        [alert] = alerts
        assert {name: alert[name] for name in expected} == expected
    header, row, _ = table.splitlines()
    assert header.split()[6:9] == ["at", "risk", "opened"]
    assert f"  {text}  " in row


def test_alerts_against_stopped_detectors_name_the_process_and_what_to_do(tmp_path):
    # a process stopped with SIGSTOP kept the command waiting 64 s for "timed out"
    data_dir = tmp_path / "data"
    _store_with_an_alert(data_dir)
    with _detectors_running(data_dir) as detectors:
        detectors.send_signal(signal.SIGSTOP)
        began = time.monotonic()
        result = CliRunner().invoke(app, ["alerts", "--data-dir", str(data_dir)])
        waited = time.monotonic() - began
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: The Seamwatch process that holds the store (pid {detectors.pid}, API at "
        "http://127.0.0.1:"
    )
    assert "did not answer within 10 s" in result.output
    assert "or restart it" in result.output
    assert waited < 20


def test_listings_started_together_on_an_idle_store_wait_their_turn(tmp_path):
    # two of three failed with "in use by another Seamwatch process"
    data_dir = tmp_path / "data"
    alert_id = _store_with_an_alert(data_dir)
    listing = [sys.executable, "-m", "seamwatch", "alerts", "--state", "all"]
    processes = [
        subprocess.Popen(
            [*listing, "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [(process, *process.communicate(timeout=120)) for process in processes]
    for process, stdout, stderr in results:
        assert process.returncode == 0, stderr
        assert alert_id in stdout


def _store_with_an_alert(data_dir: Path, money_by_currency: dict | None = None) -> str:
    """A store in ``data_dir`` with one open alert, made by another process (chDB binds this
    one to the suite's directory), with money at risk in ``money_by_currency`` if given; the
    alert's id."""
    script = (
        "import json, sys\n"
        "from datetime import UTC, datetime\n"
        "from seamwatch.settings import load_settings\n"
        "from storage import open_store\n"
        "from tests.detectors.test_alert_actions import record_alert\n"
        "store = open_store(load_settings(data_dir=sys.argv[1]))\n"
        "money = json.loads(sys.argv[2])\n"
        "alert = record_alert(store, 'billing.invoice-post', datetime.now(UTC), None, money)\n"
        "print(alert.alert_id)\n"
        "store.close()\n"
    )
    made = subprocess.run(
        [sys.executable, "-c", script, str(data_dir), json.dumps(money_by_currency)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPOSITORY,
        check=True,
    )
    return made.stdout.strip()


@contextmanager
def _detectors_running(data_dir: Path) -> Iterator[subprocess.Popen]:
    """``seamwatch detectors`` on ``data_dir``, once it says it runs; stopped afterwards."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SEAMWATCH_")}
    detectors = subprocess.Popen(
        [sys.executable, "-m", "seamwatch", "detectors", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        banner = detectors.stdout.readline()
        assert "Detectors running" in banner, banner + detectors.stderr.read()
        yield detectors
    finally:
        if detectors.poll() is None:
            detectors.send_signal(signal.SIGCONT)
            detectors.terminate()
            detectors.communicate(timeout=60)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["ack", "", "--by", "x"], "the alert id is empty; list them with 'seamwatch alerts'"),
        (["unsilence", " "], "the silence id is empty; list them with 'seamwatch alerts silences'"),
    ],
)
def test_an_empty_id_is_refused_alike_with_or_without_a_running_process(
    cli, store, chdb_data_dir, monkeypatch, command, message
):
    # relayed, it once became the path /api/v1/alerts//ack and answered "No such path"
    alone = _alerts(cli, chdb_data_dir, *command)
    _running_seamwatch(monkeypatch)
    relayed = _alerts(cli, chdb_data_dir, *command)
    for result in (alone, relayed):
        assert result.exit_code == 2
        assert result.stderr == f"Error: {message}\n"


def test_a_silence_pattern_with_an_unclosed_set_is_refused(cli, store, chdb_data_dir):
    # accepted once, with only a warning that it matched no flow: fnmatch reads '[' literally
    result = _alerts(cli, chdb_data_dir, "silence", "--for", "1h", "--flow", "[abc")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: flow '[abc': the '[' at position 1 opens a set")
    assert active_silences(store) == []


def test_ctrl_c_during_a_catch_up_once_says_where_it_stopped(capsys):
    # it ended with exit code 130 and not a word about how far it had got
    class Interrupted:
        def catch_up(self, until, stop):
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.wait(5)  # set by the handler, not a KeyboardInterrupt
            return RunReport(evaluated_until=datetime(2026, 12, 1, 15, 10, tzinfo=UTC))

    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(typer.Exit) as ended:
            _catch_up_once(Interrupted(), stop_on_signals(), timedelta(seconds=30))
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)

    assert ended.value.exit_code == 130
    assert capsys.readouterr().out == (
        "Detectors stopped; minutes evaluated: up to 2026-12-01 15:10 UTC. "
        "Run again to continue from there.\n"
    )


def test_an_alert_id_longer_than_any_key_is_one_error_line(cli, store, chdb_data_dir):
    result = cli.invoke(
        app, ["alerts", "--data-dir", str(chdb_data_dir), "ack", "a" * 1001, "--by", "ana"]
    )

    assert result.exit_code == 2
    assert result.output == (
        f"Error: alert id is 1,001 characters long; at most 1,000 are allowed (got '{'a' * 57}…')\n"
    )


@pytest.mark.parametrize("option", ["--flow", "--target", "--kind"])
def test_a_silence_pattern_over_200_characters_is_one_error_line(cli, store, chdb_data_dir, option):
    args = ["alerts", "--data-dir", str(chdb_data_dir), "silence", "--for", "1h"]

    result = cli.invoke(app, [*args, option, "x" * 201])

    assert result.exit_code == 2
    assert result.output == (
        f"Error: {option} is 201 characters long; at most 200 are allowed (got '{'x' * 57}…')\n"
    )
    assert active_silences(store) == []


@pytest.mark.parametrize(("user", "who"), [("ana", "ana"), (None, "someone"), ("", "someone")])
def test_an_ack_without_by_is_made_by_who_runs_the_command(
    cli, store, chdb_data_dir, monkeypatch, user, who
):
    # the login name was read when the module was imported, and the help showed that one
    if user is None:
        monkeypatch.delenv("USER", raising=False)
    else:
        monkeypatch.setenv("USER", user)
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    acked = _alerts(cli, chdb_data_dir, "ack", alert.alert_id)
    assert acked.exit_code == 0, acked.output
    assert acked.stdout == f"Alert {alert.alert_id} acknowledged by {who}.\n"


def test_a_login_name_that_cannot_be_recorded_is_named_as_user(cli, chdb_data_dir, monkeypatch):
    # it was reported as "--by holds a line break", an option the user had not given
    monkeypatch.setenv("USER", "bob\nx")
    refused = _alerts(cli, chdb_data_dir, "ack", "abc")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("Error: $USER holds a line break (\\n) at character 4;")
    assert refused.stderr.endswith("; or give --by\n")
