"""Projection status from PostgreSQL: checkpoint, head, lag and caught-up; no event store needed."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import psycopg

from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore
from ledger.service import Ledger
from projections.names import PROJECTION_NAMES
from projections.runner import Progress, Runner
from projections.status import read_status
from tests.support.ids import new_account_id
from tests.support.runners import catch_up


def test_status_before_any_runner_is_empty_but_answers(db: psycopg.Connection) -> None:
    status = read_status(db)

    assert [s.projection for s in status] == sorted(PROJECTION_NAMES)
    assert all((s.checkpoint, s.lag_events, s.caught_up) == (0, 0, False) for s in status)


def test_status_reports_catch_up_then_lag_and_answers_with_the_store_down(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection,
) -> None:
    server = servers()
    ledger, acc = make_ledger(server.uri), new_account_id()
    ledger.open_account(acc, "Owner", "EUR")
    for i in range(9):
        ledger.deposit(acc, "1.00", f"tx-{i}")
    head = make_store(server.uri).commit_position()

    catch_up(database_url, server.uri)

    for s in read_status(db):
        assert (s.checkpoint, s.head_position, s.lag_events, s.lag_capped) == (head, head, 0, False)
        assert s.caught_up and s.parked == 0 and s.runner_pid == os.getpid()
        assert s.healthy(max_lag_events=0)

    for i in range(30):
        ledger.deposit(acc, "1.00", f"tx-later-{i}")
    new_head = make_store(server.uri).commit_position()
    assert {s.checkpoint for s in read_status(db)} == {head}  # nothing runs: nothing moves

    stop = threading.Event()

    def after_first_batch(progress: Progress) -> None:
        stop.set()

    restarted = Runner(
        database_url, server.uri, batch_size=5, on_progress=after_first_batch, stop=stop
    )
    restarted.run()
    applied = restarted.progress.events
    assert applied <= 5

    behind = read_status(db)
    for s in behind:
        assert (s.head_position, s.lag_events) == (new_head, 30 - applied)
        assert s.checkpoint < new_head and not s.caught_up and s.lag_seconds >= 0
        assert not s.healthy(max_lag_events=0)

    server.stop()
    assert read_status(db) == behind
