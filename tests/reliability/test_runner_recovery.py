"""The projection runner picks up promptly after every event-store outage, not only the first."""

from __future__ import annotations

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
# With the event store back, the runner's next attempt should come within a couple of seconds
# (its first backoff steps are 0.1-0.8 s; gRPC's own reconnect backoff starts at 1 s).
RECOVERY_S = 2.5


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


def _seconds_until_projected(conn: psycopg.Connection[tuple[int]], revision: int) -> float:
    start = time.monotonic()
    while time.monotonic() - start < 30:
        row = conn.execute(
            "SELECT last_revision FROM account_balances WHERE account_id = 'acc'"
        ).fetchone()
        if row is not None and row[0] >= revision:
            return time.monotonic() - start
        time.sleep(0.02)
    return float("inf")


def test_the_runner_catches_up_promptly_after_each_of_several_outages(
    durable_server: ServerProcess, database_url: str, runner: Runner
) -> None:
    store = AccountEventStore.connect(durable_server.uri)
    conn = connect(database_url)
    try:
        migrate(conn)
        ledger = Ledger(CommandHandler(store), clock=_now, actor="test:reliability")
        ledger.open_account("acc", "Owner", "EUR")
        assert _seconds_until_projected(conn, 0) < RECOVERY_S
        delays = []
        for n in range(OUTAGES):
            durable_server.kill()
            time.sleep(OUTAGE_S)
            durable_server.start()
            restarted = time.monotonic()
            outcome = _write(ledger, f"after-outage-{n}")
            _seconds_until_projected(conn, outcome.revision)
            delays.append(round(time.monotonic() - restarted, 2))
    finally:
        conn.close()
        store.close()
    assert max(delays) < RECOVERY_S, (
        f"seconds from each esdblite restart until the runner had projected a new write: "
        f"{delays}; the resubscription backoff is not reset after a subscription that worked"
    )
