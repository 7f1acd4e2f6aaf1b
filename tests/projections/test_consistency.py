"""Read-your-writes (wait for a commit position) and version tracking (wait for a revision)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from ledger.service import Ledger
from projections.consistency import wait_for_position, wait_for_revision
from projections.queries import get_balance
from tests.support.ids import new_account_id
from tests.support.runners import RunnerThread
from tests.support.waiting import DEADLINE

SHORT = 0.3  # how long the negative cases wait: nothing can make them true meanwhile


def test_read_your_writes_once_the_runner_applied_the_position(
    esdb_uri: str,
    make_ledger: Callable[..., Ledger],
    start_runner: Callable[..., RunnerThread],
    db: psycopg.Connection,
) -> None:
    ledger, acc = make_ledger(esdb_uri), new_account_id()
    ledger.open_account(acc, "Owner", "EUR")
    start_runner(esdb_uri)

    outcome = ledger.deposit(acc, "12.34", "tx-1")

    assert wait_for_position(db, outcome.commit_position, timeout=DEADLINE)
    row = get_balance(db, acc)
    assert row is not None and (row.balance, row.last_revision) == (1234, outcome.revision)


def test_read_your_writes_times_out_when_no_runner_runs(
    esdb_uri: str,
    make_ledger: Callable[..., Ledger],
    start_runner: Callable[..., RunnerThread],
    db: psycopg.Connection,
) -> None:
    ledger, acc = make_ledger(esdb_uri), new_account_id()
    opened = ledger.open_account(acc, "Owner", "EUR")
    runner = start_runner(esdb_uri)
    assert wait_for_position(db, opened.commit_position, timeout=DEADLINE)
    runner.stop()

    outcome = ledger.deposit(acc, "1.00", "tx-1")

    assert not wait_for_position(db, outcome.commit_position, timeout=SHORT)
    row = get_balance(db, acc)
    assert row is not None and row.balance == 0
    start_runner(esdb_uri)
    assert wait_for_position(db, outcome.commit_position, timeout=DEADLINE)


def test_version_tracking_waits_for_the_account_revision(
    esdb_uri: str,
    make_ledger: Callable[..., Ledger],
    start_runner: Callable[..., RunnerThread],
    db: psycopg.Connection,
) -> None:
    ledger, acc = make_ledger(esdb_uri), new_account_id()
    ledger.open_account(acc, "Owner", "EUR")
    outcome = ledger.deposit(acc, "3.00", "tx-1")

    assert not wait_for_revision(db, acc, outcome.revision, timeout=SHORT)

    runner = start_runner(esdb_uri)
    assert wait_for_revision(db, acc, outcome.revision, timeout=DEADLINE)
    row = get_balance(db, acc)
    assert row is not None and row.balance == 300
    runner.stop()
    later = ledger.withdraw(acc, "1.00", "tx-2")
    assert not wait_for_revision(db, acc, later.revision, timeout=SHORT)
    assert wait_for_revision(db, acc, outcome.revision, timeout=SHORT)
