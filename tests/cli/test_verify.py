"""`ledger verify` on a real esdblite and PostgreSQL: each corruption of each table exits 5 naming
the table, the account or day and the difference as money; writes behind a stopped runner are
lag (exit 0, reported as lag)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from ledger.handler import Outcome
from ledger.service import Ledger
from tests.support.cli import Cli
from tests.support.corruption import CASES, Corruption, write_history
from tests.support.esdb import Servers
from tests.support.ids import new_account_id
from tests.support.runners import catch_up


class LedgerWriter:
    """The corruption cases' history written through the Python API."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def open(self, account_id: str, currency: str = "EUR", limit: str = "0") -> Outcome:
        return self.ledger.open_account(account_id, "Test Owner", currency, limit)

    def deposit(self, account_id: str, amount: str, tx: str) -> Outcome:
        return self.ledger.deposit(account_id, amount, tx)

    def withdraw(self, account_id: str, amount: str, tx: str) -> Outcome:
        return self.ledger.withdraw(account_id, amount, tx)

    def reverse(self, account_id: str, reverses: str, tx: str) -> Outcome:
        return self.ledger.reverse(account_id, reverses, tx)


@pytest.fixture
def accounts() -> tuple[str, str, str]:
    """The victim, the other account and a ghost that never existed."""
    return new_account_id("victim"), new_account_id("other"), new_account_id("ghost")


@pytest.fixture
def esdb(servers: Servers) -> str:
    """The URI of an esdblite of the test's own."""
    return servers().uri


@pytest.fixture
def ledger(esdb: str, make_ledger: Callable[..., Ledger]) -> Ledger:
    """The Python API on that event store."""
    return make_ledger(esdb)


@pytest.fixture
def verify_cli(
    bare_cli: Cli,
    esdb: str,
    ledger: Ledger,
    database_url: str,
    accounts: tuple[str, str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    """Given the history written and projected by a runner that then stopped, the CLI on it."""
    write_history(LedgerWriter(ledger), accounts[0], accounts[1])
    catch_up(database_url, esdb)
    monkeypatch.setenv("LEDGER_EVENTSTORE_URI", esdb)
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    return bare_cli


def sql(database_url: str, query: str, params: dict[str, Any]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(query, params)


def test_sound_read_models_pass(verify_cli: Cli) -> None:
    assert verify_cli.ok("verify").stdout == "verify: every invariant holds.\n"
    doc = verify_cli.json("verify")
    assert doc["ok"] is True and doc["violations"] == [] and doc["lag_events"] == 0


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_corruption_exits_5_naming_table_subject_and_difference(
    verify_cli: Cli, database_url: str, accounts: tuple[str, str, str], case: Corruption
) -> None:
    victim, _, ghost = accounts
    sql(database_url, case.sql, {"victim": victim, "ghost": ghost})

    shown = verify_cli("verify")
    as_json = verify_cli("verify", "--json")

    subject = case.subject_of(victim, ghost)
    named = f"account {subject}" if case.subject in ("victim", "ghost") else subject
    assert shown.exit_code == 5, shown.output
    # A balance or daily total off by an amount also breaks conservation ("money: ..."), which
    # tests/projections/test_transfer_projections.py checks on its own.
    lines = shown.stdout.splitlines()
    [line] = [x for x in lines if not x.startswith("money: ")]
    assert line.startswith(f"{case.table}: {case.check} for {named}: ")
    assert case.says in line
    assert f"verify found {len(lines)} violations" in shown.stderr
    assert as_json.exit_code == 5
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False and doc["lag_events"] == 0
    [violation] = [v for v in doc["violations"] if v["table"] != "money"]
    assert (violation["table"], violation["check"], violation["message"]) == (
        case.table,
        case.check,
        line,
    )


def test_writes_behind_a_stopped_runner_are_lag_not_corruption(
    verify_cli: Cli, ledger: Ledger, accounts: tuple[str, str, str]
) -> None:
    victim = accounts[0]
    ledger.deposit(victim, "2.00", "tx-late-1")
    ledger.withdraw(victim, "1.00", "tx-late-2")
    ledger.open_account(new_account_id("late"), "Late Owner", "EUR")

    shown = verify_cli("verify")
    doc = verify_cli.json("verify")

    assert shown.exit_code == 0, shown.output
    assert shown.stdout == "verify: every invariant holds.\n"
    assert "the read models are 3 events behind the store" in shown.stderr
    assert "lag, not corruption" in shown.stderr
    assert doc["ok"] is True and doc["lag_events"] == 3 and doc["violations"] == []


def test_transfers_left_unfinished_are_reported_as_stuck(
    verify_cli: Cli, ledger: Ledger, accounts: tuple[str, str, str], esdb: str, database_url: str
) -> None:
    from ledger.transfers.commands import RequestTransfer

    victim, other, _ = accounts
    for tid in ("stuck-requested", "stuck-debited"):
        ledger.transfers.request(
            RequestTransfer(
                transfer_id=tid,
                now=ledger.clock(),
                from_account=victim,
                to_account=other,
                amount=100,
                currency="EUR",
            )
        )
    ledger.transfers.step("stuck-debited")  # the debit, recorded: money in transit
    catch_up(database_url, esdb)

    result = verify_cli("verify", "--json")

    assert result.exit_code == 5
    found = {
        (v["table"], v["check"], v["message"].split(" has been")[0].split(": ")[-1])
        for v in json.loads(result.stdout)["violations"]
    }
    assert found == {
        ("transfer streams", "stuck", "transfer stuck-requested"),
        ("transfers", "stuck", "transfer stuck-debited of 1.00 EUR to " + other),
    }
    assert verify_cli("verify", "--stuck-after", str(10**10)).exit_code == 0
