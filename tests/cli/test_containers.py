"""The CLI against real EventStoreDB and PostgreSQL containers (LEDGER_TEST_CONTAINERS=1 only)."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.support.containers import skip_reason


@pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
def test_cli_against_real_eventstoredb_and_postgresql_containers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from projections.runner import Runner

    esdb = os.environ["LEDGER_TEST_ESDB_URI"]
    database = os.environ["LEDGER_TEST_DATABASE_URL"]
    monkeypatch.setenv("LEDGER_EVENTSTORE_URI", esdb)
    monkeypatch.setenv("LEDGER_DATABASE_URL", database)
    runner = CliRunner()
    account = f"ctr-{uuid.uuid4().hex[:12]}"

    def invoke(*args: str) -> dict[str, object]:
        result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        document: dict[str, object] = json.loads(result.stdout)
        return document

    invoke("open", account, "--owner", "Container Test", "--currency", "EUR")
    deposited = invoke("deposit", account, "70.00", "--tx", f"{account}-1")
    assert deposited["balance"] == "70.00"
    # The read side of the containers is projected by a runner in this process.
    Runner(database, esdb).run(until_caught_up=True)
    balance = invoke("balance", account, "--min-revision", "1")
    assert balance == {
        "account_id": account,
        "balance": "70.00",
        "currency": "EUR",
        "revision": 1,
        "consistent": False,
        "available": "70.00",
        "overdraft_limit": "0.00",
        "status": "open",
        "as_of": None,
        # That runner stopped once caught up: nothing is behind, and nothing projects.
        "lag_events": 0,
        "runner": "stopped",
    }
