"""`ledger up|down|status|logs|demo` through CliRunner, and the lazy imports of `balance`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from cli.stack import SERVICES
from tests.support.cli import Cli
from tests.support.stack import PROJECT, ledger_env


def test_status_json_lists_each_service_of_the_running_stack(cli: Cli) -> None:
    doc = cli.json("status")
    assert [s["name"] for s in doc["services"]] == list(SERVICES)
    for service in doc["services"]:
        assert list(service) == ["name", "pid", "address", "state", "detail"]
        assert service["state"] == "running", doc
        assert isinstance(service["pid"], int)
    addresses = {s["name"]: s["address"] for s in doc["services"]}
    assert addresses["eventstore"].startswith("localhost:")
    # PostgreSQL listens on a Unix socket only (issue 14): its address is that directory.
    assert addresses["postgres"].startswith("/") and addresses["postgres"].endswith("/run")
    assert {p["projection"] for p in doc["projections"]} == {
        "balances",
        "statements",
        "daily_totals",
        "transfers",
    }


def test_up_on_a_running_stack_starts_nothing(cli: Cli) -> None:
    doc = cli.json("up")
    assert doc["started"] == []
    assert cli.ok("up").stdout.strip() == "The local stack is already up."


def test_logs_shows_the_last_lines_of_a_service(cli: Cli) -> None:
    result = cli.ok("logs", "eventstore", "-n", "50")
    assert "esdblite ready" in result.stdout
    unknown = cli("logs", "nosuch")
    assert unknown.exit_code == 2
    assert "choose from eventstore, postgres, runner" in unknown.stderr


def test_status_of_a_home_without_a_stack_exits_3(bare_cli: Cli) -> None:
    result = bare_cli("status", "--json")
    assert result.exit_code == 3
    assert {s["state"] for s in json.loads(result.stdout)["services"]} == {"stopped"}
    down = bare_cli("down")
    assert down.exit_code == 0
    assert down.stdout.strip() == "Nothing was running."


def test_up_refuses_when_external_services_are_configured(external_cli: Cli) -> None:
    result = external_cli("up")
    assert result.exit_code == 2
    assert "external services are configured" in result.stderr


def test_balance_never_imports_the_event_store_client(
    cli: Cli, account: str, stack_home: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        from typer.testing import CliRunner
        from cli.main import app
        result = CliRunner().invoke(app, ["balance", {account!r}, "--json"])
        assert result.exit_code == 0, result.stderr
        print(json.dumps({{
            "balance": json.loads(result.stdout)["balance"],
            "esdbclient": sorted(m for m in sys.modules if m.startswith("esdbclient")),
            "grpc": "grpc" in sys.modules,
        }}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=ledger_env(stack_home),
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"balance": "100.00", "esdbclient": [], "grpc": False}
