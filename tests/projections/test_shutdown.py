"""Orderly shutdown: runners and catch-up readers stopped again and again, SIGTERM mid-batch.

A gRPC thread left inside a call while its channel or the interpreter shuts down can abort the
process in gRPC's C core ("Check failed"); each stop here must join its threads and exit cleanly.
"""

from __future__ import annotations

import functools
import queue
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from esdbclient import EventStoreDBClient

from bench.projections_bench import account_chunks
from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore
from projections.feed import SubscriptionReader
from projections.runner import ACCOUNT_FILTER
from tests.support.feed import META
from tests.support.ids import new_account_id
from tests.support.runners import RunnerThread
from tests.support.stack import LEDGER, ledger_env
from tests.support.waiting import DEADLINE, wait_until

READER_THREAD = "projection-subscription"
RUNNER_CYCLES = 25
READER_CYCLES = 30
SIGNAL_CYCLES = 10
READ_MODELS = (
    "account_balances, account_statements, daily_totals, projection_accounts,"
    " projection_checkpoints, projection_status, parked_events"
)


def fill(store: AccountEventStore, accounts: int, events: int) -> int:
    """Write `events` account events per account; the head's commit position."""
    head = 0
    for account_id in [new_account_id() for _ in range(accounts)]:
        revision = -1
        for chunk in account_chunks(account_id, events):
            head = store.append(account_id, expected_revision=revision, events=chunk, meta=META)
            revision += len(chunk)
    return head


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == READER_THREAD and t.is_alive()]


def checkpoint(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT coalesce(min(position), 0) FROM projection_checkpoints").fetchone()
    return int(row[0]) if row else 0


def first_batch_or_exit(db: psycopg.Connection[Any], proc: subprocess.Popen[str]) -> bool:
    return checkpoint(db) > 0 or proc.poll() is not None


def test_a_runner_started_and_stopped_again_and_again_leaves_no_reader_behind(
    servers: Callable[..., ServerProcess],
    make_store: Callable[[str], AccountEventStore],
    start_runner: Callable[..., RunnerThread],
) -> None:
    server = servers()
    fill(make_store(server.uri), accounts=2, events=300)
    assert reader_threads() == []
    for cycle in range(RUNNER_CYCLES):
        runner = start_runner(server.uri, batch_size=50)
        wait_until(reader_threads, what=f"the subscription of cycle {cycle}")

        runner.stop()  # fails the test if the runner did not stop or had failed

        assert reader_threads() == [], f"cycle {cycle}: the reader outlived its runner"


def test_a_catch_up_reader_closed_again_and_again_leaves_its_call(
    servers: Callable[..., ServerProcess], make_store: Callable[[str], AccountEventStore]
) -> None:
    server = servers()
    fill(make_store(server.uri), accounts=1, events=200)
    for cycle in range(READER_CYCLES):
        client = EventStoreDBClient(server.uri)
        try:
            subscription = client.subscribe_to_all(
                filter_include=ACCOUNT_FILTER, filter_by_stream_name=True
            )
            inbox: queue.Queue[Any] = queue.Queue(maxsize=5)
            reader = SubscriptionReader(subscription, inbox)
            reader.start()
            # A full queue: the reader waits to hand an event over, inside its subscription.
            wait_until(inbox.full, what=f"a full inbox in cycle {cycle}")

            reader.close()

            assert not reader.is_alive(), f"cycle {cycle}: the reader did not leave its call"
        finally:
            client.close()
    assert reader_threads() == []


def test_ledger_projections_run_exits_cleanly_on_sigterm_or_sigint_mid_batch(
    servers: Callable[..., ServerProcess],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    server = servers()
    head = fill(make_store(server.uri), accounts=4, events=1500)
    env = ledger_env(
        tmp_path / "home", LEDGER_EVENTSTORE_URI=server.uri, LEDGER_DATABASE_URL=database_url
    )
    for cycle in range(SIGNAL_CYCLES):
        db.execute(f"TRUNCATE {READ_MODELS}")
        proc = subprocess.Popen(
            [str(LEDGER), "projections", "run"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Mid catch-up: some batches committed, more on their way.
            started = functools.partial(first_batch_or_exit, db, proc)
            wait_until(started, what=f"the first batch of cycle {cycle}")
            behind = checkpoint(db) < head
            proc.send_signal(signal.SIGINT if cycle % 3 == 2 else signal.SIGTERM)
            _, stderr = proc.communicate(timeout=DEADLINE)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, (cycle, proc.returncode, stderr)
        assert "Check failed" not in stderr and "Traceback" not in stderr, (cycle, stderr)
        assert behind, f"cycle {cycle}: the runner had caught up before the signal"
