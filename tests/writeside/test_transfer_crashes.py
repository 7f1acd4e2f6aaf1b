"""kill -9 of the command process, and of the process manager, between every pair of steps:
each transfer resumes to the right final state with nothing posted twice."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from ledger.eventstore import AccountEventStore
from ledger.service import Ledger
from ledger.transfer_manager import TransferManager
from ledger.transfers.decider import TransferStatus
from tests.support.ids import new_account_id

# The writes of a transfer that completes: Requested, the debit, Debited, the credit,
# Credited + Completed. A kill after write N, for N = 1..4, falls between every pair of steps.
COMPLETED_WRITES = (1, 2, 3, 4)


class Start:
    def __init__(self, position: int) -> None:
        self.position = position

    def load(self) -> int:
        return self.position

    def save(self, position: int) -> None:
        self.position = position


def now() -> datetime:
    return datetime.now(UTC)


def crash(uri: str, *args: str) -> None:
    """Run the crashing child and check that it was killed (not that it finished)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.writeside.crashing_transfer", uri, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


@pytest.fixture
def ledger(esdb_uri: str) -> Ledger:
    from ledger.handler import CommandHandler

    store = AccountEventStore.connect(esdb_uri)
    return Ledger(CommandHandler(store, cache_size=0), clock=now, actor="test")


def setup(ledger: Ledger) -> tuple[str, str, str]:
    a, b = new_account_id(), new_account_id()
    ledger.open_account(a, "A", "EUR")
    ledger.open_account(b, "B", "EUR")
    ledger.deposit(a, "100", "seed-" + a)
    return a, b, "crash-" + a


def assert_moved_once(ledger: Ledger, a: str, b: str, status: TransferStatus) -> None:
    store = ledger.handler.store
    a_events, b_events = store.read(a), store.read(b)
    if status is TransferStatus.COMPLETED:
        assert (ledger.account(a).balance, ledger.account(b).balance) == (6000, 4000)
        assert (len(a_events), len(b_events)) == (3, 2)  # open, seed, debit / open, credit
    else:
        assert (ledger.account(a).balance, ledger.account(b).balance) == (10000, 0)


def manager(ledger: Ledger, start: int) -> TransferManager:
    store: object = ledger.handler.store
    return TransferManager(
        ledger.transfers,
        store,
        Start(start),
        clock=now,
        grace=timedelta(0),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("writes", COMPLETED_WRITES)
def test_a_command_killed_after_each_write_is_finished_by_its_retry(
    ledger: Ledger, esdb_uri: str, writes: int
) -> None:
    a, b, tid = setup(ledger)

    crash(esdb_uri, "transfer", a, b, "40", tid, str(writes))
    again = ledger.transfer(a, b, "40", tid)

    assert (again.replayed, again.state.status) == (True, TransferStatus.COMPLETED)
    assert_moved_once(ledger, a, b, TransferStatus.COMPLETED)


@pytest.mark.parametrize("writes", COMPLETED_WRITES)
def test_a_command_killed_after_each_write_is_finished_by_the_process_manager(
    ledger: Ledger, esdb_uri: str, writes: int
) -> None:
    start = ledger.handler.store.commit_position()
    a, b, tid = setup(ledger)

    crash(esdb_uri, "transfer", a, b, "40", tid, str(writes))
    assert manager(ledger, start).catch_up() == 0

    assert ledger.transfer_state(tid).status is TransferStatus.COMPLETED
    assert_moved_once(ledger, a, b, TransferStatus.COMPLETED)


@pytest.mark.parametrize("first", (1, 2))
@pytest.mark.parametrize("writes", (1, 2, 3))
def test_the_process_manager_killed_between_steps_is_resumed_by_the_next_one(
    ledger: Ledger, esdb_uri: str, first: int, writes: int
) -> None:
    """The command dies after `first` writes; a manager dies after `writes` more; another
    manager (or the command's retry) finishes."""
    start = ledger.handler.store.commit_position()
    a, b, tid = setup(ledger)
    crash(esdb_uri, "transfer", a, b, "40", tid, str(first))
    if first + writes < 5:
        crash(esdb_uri, "manager", str(start), str(writes))

    assert manager(ledger, start).catch_up() == 0

    assert ledger.transfer_state(tid).status is TransferStatus.COMPLETED
    assert_moved_once(ledger, a, b, TransferStatus.COMPLETED)


@pytest.mark.parametrize("writes", (1, 2, 3))
def test_a_refund_interrupted_by_kills_ends_failed_with_the_money_back(
    ledger: Ledger, esdb_uri: str, writes: int
) -> None:
    """Debited, then the destination closed: the manager records the refusal, refunds and
    fails the transfer (3 writes); it is killed after each and the next one finishes."""
    start = ledger.handler.store.commit_position()
    a, b, tid = setup(ledger)
    crash(esdb_uri, "transfer", a, b, "40", tid, "3")  # requested, debit posted, recorded
    ledger.close_account(b)
    if writes < 3:
        crash(esdb_uri, "manager", str(start), str(writes))

    assert manager(ledger, start).catch_up() == 0

    state = ledger.transfer_state(tid)
    assert (state.status, state.refunded) == (TransferStatus.FAILED, True)
    assert_moved_once(ledger, a, b, TransferStatus.FAILED)
    assert len(ledger.handler.store.read(a)) == 4  # open, seed, debit, refund: once each
