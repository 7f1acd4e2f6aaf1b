"""The projection runner picks up promptly after every event-store outage, not only the first."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from esdblite.process import ServerProcess
from ledger.errors import ServiceUnavailableError
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler, Outcome
from ledger.service import Ledger
from projections.db import connect, migrate
from projections.runner import Runner

OUTAGES = 5
OUTAGE_S = 0.3
# A hang guard only (nothing here is a speed check): how long to wait for a projection.
PATIENCE_S = 30
FIRST_BACKOFF = "resubscribing in 0.1s"


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def runner(durable_server: ServerProcess, database_url: str) -> Iterator[Runner]:
    runner = Runner(database_url, durable_server.uri, batch_ms=20.0)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        runner.stop_event.set()
        thread.join(30)


def _write(ledger: Ledger, tx: str) -> Outcome:
    """Deposit, retrying while the client's connection comes back after a restart."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return ledger.deposit("acc", "1.00", tx)
        except ServiceUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _projected(conn: psycopg.Connection[tuple[int]], revision: int) -> bool:
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT last_revision FROM account_balances WHERE account_id = 'acc'"
        ).fetchone()
        if row is not None and row[0] >= revision:
            return True
        time.sleep(0.02)
    return False


def test_after_each_of_several_outages_the_runner_projects_again_starting_its_backoff_over(
    durable_server: ServerProcess,
    database_url: str,
    runner: Runner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="projections.runner")
    store = AccountEventStore.connect(durable_server.uri)
    conn = connect(database_url)
    first_waits = []
    try:
        migrate(conn)
        ledger = Ledger(CommandHandler(store), clock=_now, actor="test:reliability")
        ledger.open_account("acc", "Owner", "EUR")
        assert _projected(conn, 0)
        for n in range(OUTAGES):
            seen = len(caplog.records)
            durable_server.kill()
            time.sleep(OUTAGE_S)
            durable_server.start()
            outcome = _write(ledger, f"after-outage-{n}")
            assert _projected(conn, outcome.revision), f"outage {n}: the write was never projected"
            waits = [
                r.getMessage()
                for r in caplog.records[seen:]
                if "resubscribing in" in r.getMessage()
            ]
            assert waits, f"outage {n}: the runner never noticed the event store went away"
            first_waits.append(waits[0].rsplit("; ", 1)[-1])
    finally:
        conn.close()
        store.close()
    # Each outage follows a session that projected events, so each starts at the first step;
    # a backoff carried over from earlier outages would leave a later one waiting up to 5 s.
    assert first_waits == [FIRST_BACKOFF] * OUTAGES, first_waits
