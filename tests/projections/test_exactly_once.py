"""Exactly once across failures: a runner killed inside its batch, an event store restarted."""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore
from ledger.service import Ledger
from ledger.writemodel import write_model_fold
from projections.consistency import wait_for_position
from projections.verify import verify
from tests.projections import crashing_runner
from tests.support.ids import new_account_id
from tests.support.runners import RunnerThread, catch_up
from tests.support.waiting import DEADLINE, retry_while_unavailable

REPO = Path(__file__).resolve().parents[2]


def write_postings(ledger: Ledger, accounts: int, postings: int) -> tuple[list[str], int]:
    """Open accounts and post deposits and withdrawals round-robin; (ids, postings written)."""
    ids = [new_account_id() for _ in range(accounts)]
    for acc in ids:
        ledger.open_account(acc, "Owner", "EUR", "100.00")
    for i in range(postings):
        acc = ids[i % accounts]
        if i % 3 == 2:
            ledger.withdraw(acc, "0.75", f"tx-{i}")
        else:
            ledger.deposit(acc, f"{1 + i % 7}.00", f"tx-{i}")
    return ids, postings


def assert_exactly_once(
    conn: psycopg.Connection[Any], store: AccountEventStore, ids: list[str], postings: int
) -> None:
    """Every posting once in the statements, totals counted once, balances equal to the fold."""
    fold = write_model_fold(store)
    books = fold(store.commit_position())
    for acc in ids:
        balance, revisions = books.accounts[acc].balance, sorted(books.postings[acc])
        rows = conn.execute(
            "SELECT revision FROM account_statements WHERE account_id = %s ORDER BY revision",
            (acc,),
        ).fetchall()
        assert [r[0] for r in rows] == revisions
        row = conn.execute(
            "SELECT balance FROM account_balances WHERE account_id = %s", (acc,)
        ).fetchone()
        assert row == (balance,)
    count = conn.execute(
        "SELECT count(*) FROM account_statements WHERE account_id = ANY(%s)", (ids,)
    ).fetchone()
    assert count == (postings,)
    totals = conn.execute("SELECT sum(count) FROM daily_totals").fetchone()
    assert totals == (postings,)
    assert verify(conn, fold) == []


def test_a_runner_killed_inside_a_batch_loses_and_doubles_nothing(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection,
) -> None:
    server = servers()
    ids, postings = write_postings(make_ledger(server.uri), accounts=4, postings=120)

    crashed = subprocess.run(
        [sys.executable, "-m", crashing_runner.__name__, database_url, server.uri, "20", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert crashed.returncode == crashing_runner.CRASHED, crashed.stderr[-2000:]
    store = make_store(server.uri)
    committed = db.execute("SELECT min(position) FROM projection_checkpoints").fetchone()
    assert committed is not None and 0 < committed[0] < store.commit_position()  # batch 2 lost
    catch_up(database_url, server.uri)
    assert_exactly_once(db, store, ids, postings)


def test_the_runner_resubscribes_from_its_checkpoint_after_an_event_store_restart(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    start_runner: Callable[..., RunnerThread],
    db: psycopg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="projections.runner")
    server = servers(durable=True)
    ids, before = write_postings(make_ledger(server.uri), accounts=3, postings=30)
    runner = start_runner(server.uri, batch_size=10)
    head = make_store(server.uri).commit_position()
    assert wait_for_position(db, head, timeout=DEADLINE)

    server.restart()
    # A discover URI asks the node for gossip at once; gRPC may still be backing off.
    ledger = retry_while_unavailable(functools.partial(make_ledger, server.uri))
    for i in range(30):
        deposit = functools.partial(ledger.deposit, ids[i % 3], "2.00", f"tx-after-{i}")
        outcome = retry_while_unavailable(deposit)

    assert wait_for_position(db, outcome.commit_position, timeout=DEADLINE)
    assert runner.thread.is_alive() and runner.error is None
    assert "resubscribing" in caplog.text
    assert_exactly_once(db, make_store(server.uri), ids, before + 30)
