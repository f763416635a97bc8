"""A running process keeps ranking with the last good severity file when an edit breaks it."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from typer.testing import CliRunner

import seamwatch.access
from detectors.alerts_api import routes
from detectors.severity import SeverityFileError, SeveritySource, severity_in_force
from seamwatch.cli import app
from storage import StoreLocked
from tests.cli.test_yaml_aliases import ALIAS_BOMB, RECURSIVE_TIERS
from tests.detectors.test_alert_actions import record_alert

GOOD = "tiers:\n  critical: {{weight: 1.0}}\n  low: {{weight: 0.2}}\ndefault_tier: {tier}\n"
# one weight below zero, on line 3
NEGATIVE_WEIGHT = "tiers:\n  critical: {weight: 1.0}\n  low: {weight: -0.4}\ndefault_tier: low\n"


def rewrite(path: Path, text: str) -> None:
    """Write ``path`` as an editor would, a second later than its last version: two writes
    within one tick of the file system's clock would otherwise look like one version."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    later = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(later, later))


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "detectors.severity" and record.levelno == logging.WARNING
    ]


def _running_seamwatch(monkeypatch: pytest.MonkeyPatch, document: dict) -> None:
    """The store is held by a running process whose API answers ``document``."""

    def locked(settings, **options):
        raise StoreLocked("held by a running Seamwatch")

    monkeypatch.setattr(seamwatch.access, "open_store", locked)
    monkeypatch.setattr(seamwatch.access, "running_endpoint", lambda _: "http://127.0.0.1:9")
    monkeypatch.setattr(seamwatch.access, "get_json", lambda *_, **__: document)


@pytest.fixture
def severity_file(tmp_path: Path) -> Path:
    path = tmp_path / "sev.yaml"
    rewrite(path, GOOD.format(tier="critical"))
    return path


def test_a_negative_weight_keeps_the_last_good_file_with_one_warning(severity_file, caplog):
    source = SeveritySource(severity_file)
    rewrite(severity_file, NEGATIVE_WEIGHT)

    with caplog.at_level(logging.INFO, logger="detectors.severity"):
        tiers = [source.current().tier_for("billing.invoice-post").name for _ in range(5)]

    assert tiers == ["critical"] * 5
    [warning] = warnings_of(caplog)
    assert f"{severity_file}, line 3, field tiers.low.weight" in warning
    assert "(got -0.4)" in warning
    assert f"The last good version of {severity_file} (modified " in warning
    assert "stays in force until the file is fixed" in warning
    assert "--severity" not in warning  # no advice a running process cannot follow
    assert "line 3, field tiers.low.weight" in source.refused


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (RECURSIVE_TIERS, "line 2: the alias *tiers refers to the node that holds it"),
        (ALIAS_BOMB, "line 5: aliases expand to more than 10,000 values"),
    ],
    ids=["recursive alias", "alias bomb"],
)
def test_an_alias_that_cannot_be_read_keeps_the_last_good_file(
    severity_file, caplog, text, problem
):
    source = SeveritySource(severity_file)
    rewrite(severity_file, text)

    with caplog.at_level(logging.INFO, logger="detectors.severity"):
        assert source.current().tier_for("billing.invoice-post").name == "critical"

    [warning] = warnings_of(caplog)
    assert f"{severity_file}, {problem}" in warning
    assert "stays in force until the file is fixed" in warning


def test_a_deleted_file_keeps_the_last_good_one_and_a_fixed_file_takes_over(severity_file, caplog):
    source = SeveritySource(severity_file)
    with caplog.at_level(logging.INFO, logger="detectors.severity"):
        severity_file.unlink()
        assert source.current().tier_for("x").name == "critical"
        assert source.current().tier_for("x").name == "critical"
        [warning] = warnings_of(caplog)
        assert f"Cannot read severity file '{severity_file}': No such file" in warning
        assert "stays in force" in warning

        rewrite(severity_file, GOOD.format(tier="low"))
        assert source.current().tier_for("x").name == "low"
    assert source.refused is None
    assert "is good again" in caplog.records[-1].getMessage()


def test_each_broken_change_is_warned_about_once(severity_file, caplog):
    source = SeveritySource(severity_file)
    with caplog.at_level(logging.WARNING, logger="detectors.severity"):
        rewrite(severity_file, NEGATIVE_WEIGHT)
        source.current()
        source.current()
        rewrite(severity_file, NEGATIVE_WEIGHT.replace("-0.4", "true"))
        source.current()
        source.current()
    first, second = warnings_of(caplog)
    assert "(got -0.4)" in first
    assert "(got true)" in second


def test_a_process_cannot_start_on_a_broken_file(tmp_path):
    path = tmp_path / "sev.yaml"
    rewrite(path, NEGATIVE_WEIGHT)
    with pytest.raises(SeverityFileError, match="line 3, field tiers.low.weight"):
        SeveritySource(path)


def test_the_process_shares_one_source(severity_file, monkeypatch):
    monkeypatch.setenv("SEAMWATCH_SEVERITY_FILE", str(severity_file))
    assert severity_in_force() is severity_in_force()
    assert severity_in_force().path == severity_file.resolve()


def test_the_api_keeps_listing_alerts_and_says_which_file_is_in_force(
    store, severity_file, monkeypatch
):
    # every listing answered 400 "Invalid severity file" once the file was broken
    monkeypatch.setenv("SEAMWATCH_SEVERITY_FILE", str(severity_file))
    client = TestClient(Starlette(routes=routes(store)), raise_server_exceptions=False)
    record_alert(store, "billing.invoice-post", datetime.now(UTC) - timedelta(minutes=5))
    good = client.get("/api/v1/alerts").json()

    rewrite(severity_file, NEGATIVE_WEIGHT)
    response = client.get("/api/v1/alerts")

    assert response.status_code == 200, response.text
    document = response.json()
    assert [alert["tier"] for alert in document["alerts"]] == ["critical"]
    assert good["severity"]["refused"] is None
    assert document["severity"]["file"] == str(severity_file.resolve())
    assert document["severity"]["modified_at"] == good["severity"]["modified_at"]
    assert "line 3, field tiers.low.weight" in document["severity"]["refused"]


def test_the_cli_relaying_to_a_running_process_warns_of_a_refused_file(
    store, chdb_data_dir, monkeypatch, tmp_path
):
    monkeypatch.setenv("SEAMWATCH_DATABASE", store.database)
    monkeypatch.delenv("SEAMWATCH_SEVERITY_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    refused = "Invalid severity file:\n  /etc/sev.yaml, line 3, field tiers.low.weight: ..."
    document = {
        "alerts": [],
        "severity": {
            "file": "/etc/sev.yaml",
            "modified_at": "2025-03-03T09:05:00.000Z",
            "refused": refused,
        },
    }
    _running_seamwatch(monkeypatch, document)

    result = CliRunner().invoke(app, ["alerts", "--data-dir", str(chdb_data_dir)])

    assert result.exit_code == 0, result.output
    assert "No open alerts" in result.stdout
    assert (
        "Warning: the running Seamwatch ranks with the last good version of /etc/sev.yaml "
        "(modified 2025-03-03 09:05 UTC); the file as it is now is refused:\n" + refused
    ) in result.stderr


def test_the_cli_does_not_call_the_file_in_force_unused(
    store, chdb_data_dir, severity_file, monkeypatch, tmp_path
):
    monkeypatch.setenv("SEAMWATCH_DATABASE", store.database)
    monkeypatch.setenv("SEAMWATCH_SEVERITY_FILE", str(severity_file))
    monkeypatch.chdir(tmp_path)
    in_force = {"file": str(severity_file.resolve()), "modified_at": None, "refused": None}
    _running_seamwatch(monkeypatch, {"alerts": [], "severity": in_force})

    result = CliRunner().invoke(app, ["alerts", "--data-dir", str(chdb_data_dir)])

    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr
