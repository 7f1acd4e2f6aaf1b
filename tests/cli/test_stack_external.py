"""`ledger status` with external services configured, and auto-start of the whole local stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.stack import SERVICES, LocalStack
from tests.support.cli import Cli

DEAD_EVENTSTORE = "esdb://admin:s3cret-pw@localhost:1?Tls=false"
DEAD_DATABASE = "postgresql://clerk:db-s3cret@127.0.0.1:1/ledger"


def test_status_checks_the_configured_services_not_the_local_stack(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The session's local stack runs, but the configured services are dead.
    monkeypatch.setenv("LEDGER_EVENTSTORE_URI", DEAD_EVENTSTORE)
    monkeypatch.setenv("LEDGER_DATABASE_URL", DEAD_DATABASE)
    result = cli("status", "--json")
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    assert doc["home"] is None and doc["projections"] == []
    assert [(s["name"], s["address"], s["state"]) for s in doc["services"]] == [
        ("eventstore", "localhost:1", "unreachable"),
        ("postgres", "127.0.0.1:1/ledger", "unreachable"),
    ]
    assert all(s["detail"] for s in doc["services"])
    table = cli("status")
    assert table.exit_code == 3
    for output in (result.stdout, table.stdout, table.stderr):
        assert "s3cret" not in output


def test_status_of_reachable_external_services_exits_0(external_cli: Cli) -> None:
    doc = external_cli.json("status")
    assert [(s["name"], s["state"], s["detail"]) for s in doc["services"]] == [
        ("eventstore", "reachable", ""),
        ("postgres", "reachable", ""),
    ]
    assert "admin" not in doc["services"][0]["address"]


def test_a_read_after_down_starts_the_whole_stack_not_postgres_alone(
    bare_cli: Cli, private_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_HOME", str(private_home))
    result = bare_cli("balance", "acc-nobody")
    assert result.exit_code == 1, result.stderr
    assert "starting the local stack" in result.stderr
    stack = LocalStack(private_home)
    assert {s.name: s.state for s in stack.status()} == dict.fromkeys(SERVICES, "running")
