"""Only one runner per projection at a time: a second one waits for the first to stop."""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from ledger.service import Ledger
from projections.consistency import wait_for_position
from tests.support.ids import new_account_id
from tests.support.postgres import waiting_for_advisory_lock
from tests.support.runners import RunnerThread
from tests.support.waiting import DEADLINE, eventually


def test_a_second_runner_waits_until_the_first_stops(
    esdb_uri: str,
    make_ledger: Callable[..., Ledger],
    start_runner: Callable[..., RunnerThread],
    db: psycopg.Connection,
) -> None:
    ledger, acc = make_ledger(esdb_uri), new_account_id()
    ledger.open_account(acc, "Owner", "EUR")
    first = start_runner(esdb_uri)
    first_position = ledger.deposit(acc, "1.00", "tx-1").commit_position
    assert wait_for_position(db, first_position, timeout=DEADLINE)

    second = start_runner(esdb_uri)
    eventually(lambda: waiting_for_advisory_lock(db), "the second runner to wait for the lock")
    position = ledger.deposit(acc, "2.00", "tx-2").commit_position
    assert wait_for_position(db, position, timeout=DEADLINE)
    assert second.runner.progress.events == 0
    assert second.thread.is_alive()

    # The runner counts a batch just after committing it: wait for that before reading it.
    eventually(lambda: first.runner.progress.position >= position, "the first runner to count it")
    applied_by_first = first.runner.progress.events
    first.stop()
    last = ledger.deposit(acc, "4.00", "tx-3").commit_position

    assert wait_for_position(db, last, timeout=DEADLINE)
    assert first.runner.progress.events == applied_by_first
    # It resumed from the first one's checkpoint. (Its counter moves just after the commit.)
    eventually(lambda: second.runner.progress.events == 1, "the second runner to count it")
    rows = db.execute(
        "SELECT revision, balance_after FROM account_statements WHERE account_id = %s"
        " ORDER BY revision",
        (acc,),
    ).fetchall()
    assert rows == [(1, 100), (2, 300), (3, 700)]
