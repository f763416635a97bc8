"""Every command that opens the store takes the same store options."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from seamwatch.cli import app
from tests.storage.clickhouse_http import serve

runner = CliRunner()
STORE_COMMANDS = ["up", "collector", "dashboard", "detectors", "alerts", "lineage", "reconcile"]


@pytest.mark.parametrize("command", STORE_COMMANDS)
def test_every_store_command_takes_the_store_options(command):
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "--data-dir" in result.output
    assert "--clickhouse-url" in result.output


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ClickHouse HTTP interface over chDB, for this module."""
    with serve(tmp_path_factory.mktemp("clickhouse-http")) as port:
        yield f"http://default:@127.0.0.1:{port}/options"


@pytest.mark.parametrize(
    ("args", "field"),
    [(["lineage", "--key", "INV-1"], "hops"), (["reconcile"], "findings")],
    ids=["lineage", "reconcile"],
)
def test_lineage_and_reconcile_read_the_server_named_by_the_flag(server_url, args, field):
    # both used to refuse --clickhouse-url, which their own error text recommends
    result = runner.invoke(app, [*args, "--json", "--clickhouse-url", server_url])
    assert result.exit_code == 0, result.output
    assert field in json.loads(result.stdout)


@pytest.mark.parametrize("command", [["lineage", "--key", "INV-1"], ["reconcile"]])
def test_a_server_that_does_not_answer_is_named_with_the_flag_that_moves_it(command):
    result = runner.invoke(app, [*command, "--clickhouse-url", "http://127.0.0.1:1/seamwatch"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: Cannot reach the ClickHouse server at 127.0.0.1:1")
    assert "--clickhouse-url" in result.stderr
    assert "Traceback" not in result.output
