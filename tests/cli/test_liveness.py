"""A runner's liveness through the CLI: `projections status`, `--health`, and the lag that
`balance`, `statement` and `accounts` say on stderr and carry in their JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from esdblite.process import ServerProcess
from ledger.service import Ledger
from projections.runner import Runner
from tests.support.cli import Cli
from tests.support.esdb import Servers
from tests.support.ids import new_account_id
from tests.support.runners import RunnerThread, runner_process
from tests.support.waiting import wait_until


@pytest.fixture
def server(servers: Servers) -> ServerProcess:
    """An event store of the test's own: nobody else writes there."""
    return servers()


@pytest.fixture
def cli_on(
    bare_cli: Cli, server: ServerProcess, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """The CLI in external mode on the test's event store and a fresh read-side database."""
    monkeypatch.setenv("LEDGER_EVENTSTORE_URI", server.uri)
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    return bare_cli


@pytest.fixture
def live_runner(server: ServerProcess, database_url: str) -> Iterator[RunnerThread]:
    """A live runner on a thread (default heartbeat), stopped in order after the test."""
    thread = RunnerThread(Runner(database_url, server.uri, batch_ms=20.0)).start()
    try:
        yield thread
    finally:
        if thread.thread.is_alive():
            thread.stop()


@pytest.fixture
def account(server: ServerProcess, make_ledger: Callable[..., Ledger]) -> tuple[Ledger, str]:
    """A Ledger on the test's event store and an account with 70.00 on it."""
    ledger, account_id = make_ledger(server.uri), new_account_id()
    ledger.open_account(account_id, "Owner", "EUR")
    ledger.deposit(account_id, "70.00", "tx-seed")
    return ledger, account_id


def status_when(cli: Cli, condition: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """`projections status --json`, once the condition holds for every projection (polled)."""

    def met() -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = cli.json("projections", "status")
        return docs if all(condition(d) for d in docs) else []

    return wait_until(met, what="a projection status")


def caught_up(doc: dict[str, Any]) -> bool:
    """A live runner has applied everything and says so."""
    return bool(doc["caught_up"] and doc["lag_events"] == 0)


def test_a_killed_runner_reads_as_stale_and_every_read_says_how_far_behind(
    cli_on: Cli, server: ServerProcess, database_url: str, account: tuple[Ledger, str]
) -> None:
    cli, (ledger, acc) = cli_on, account
    runner = runner_process(database_url, server.uri, heartbeat_every=0.3)
    try:
        status_when(cli, caught_up)
    finally:
        runner.kill()  # kill -9: no orderly exit, its status and heartbeat rows stay
        runner.wait()
    ledger.deposit(acc, "5.00", "tx-after-1")
    ledger.deposit(acc, "5.00", "tx-after-2")

    docs = status_when(cli, lambda d: d["runner"] == "stale")
    assert {(d["caught_up"], d["lag_events"], d["lag_current"]) for d in docs} == {(False, 2, True)}
    assert {d["runner_pid"] for d in docs} == {runner.pid}
    table = cli.ok("projections", "status").stdout
    assert "stale" in table and "yes" not in table, table
    health = cli("projections", "status", "--health")
    assert health.exit_code == 5
    assert "balances: runner stale" in health.stderr

    balance = cli.ok("balance", acc)
    assert balance.stdout.startswith(f"{acc}: 70.00 EUR")
    assert "the balances projection is not being updated: its runner is stale" in balance.stderr
    assert "it is 2 events (" in balance.stderr
    doc = cli_on.json("balance", acc)
    assert (doc["balance"], doc["lag_events"], doc["runner"]) == ("70.00", 2, "stale")
    assert {"account_id", "balance", "currency", "revision", "consistent"} <= set(doc)

    statement = cli.ok("statement", acc, "--json")
    assert "the statements projection is not being updated" in statement.stderr
    doc = cli.json("statement", acc)
    assert [p["amount"] for p in doc["postings"]] == ["70.00"]
    assert (doc["lag_events"], doc["runner"]) == (2, "stale")
    period = cli.json("statement", acc, "--from", "2000-01-01")
    assert (period["closing_balance"], period["lag_events"], period["runner"]) == (
        "70.00",
        2,
        "stale",
    )

    accounts = cli.ok("accounts")
    assert "the balances projection is not being updated" in accounts.stderr
    [listed] = cli.json("accounts")
    assert (listed["account_id"], listed["lag_events"], listed["runner"]) == (acc, 2, "stale")


def test_a_runner_that_stopped_in_order_reads_as_stopped(
    cli_on: Cli, live_runner: RunnerThread, account: tuple[Ledger, str]
) -> None:
    cli, (ledger, acc) = cli_on, account
    status_when(cli, caught_up)
    live_runner.stop()
    ledger.deposit(acc, "1.00", "tx-after")

    docs = cli.json("projections", "status")
    assert {(d["runner"], d["caught_up"], d["lag_events"]) for d in docs} == {("stopped", False, 1)}
    assert cli("projections", "status", "--health").exit_code == 5
    balance = cli.ok("balance", acc, "--json")
    assert "its runner is stopped" in balance.stderr
    assert "it is 1 events (" in balance.stderr


def test_a_live_caught_up_runner_adds_no_note_and_passes_health(
    cli_on: Cli, live_runner: RunnerThread, account: tuple[Ledger, str]
) -> None:
    cli, (ledger, acc) = cli_on, account
    ledger.deposit(acc, "1.00", "tx-live")
    docs = status_when(cli, lambda d: caught_up(d) and d["checkpoint"] == d["head_position"])
    assert {d["runner"] for d in docs} == {"running"}

    health = cli("projections", "status", "--health")
    assert health.exit_code == 0, health.stderr
    balance = cli.ok("balance", acc, "--json")
    assert balance.stderr == ""
    assert '"lag_events": 0' in balance.stdout and '"runner": "running"' in balance.stdout
    assert cli.ok("balance", acc).stderr == ""
    assert cli.ok("statement", acc).stderr == ""
    assert cli.ok("accounts").stderr == ""
    [listed] = cli.json("accounts")
    assert (listed["balance"], listed["lag_events"], listed["runner"]) == ("71.00", 0, "running")
