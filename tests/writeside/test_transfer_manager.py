"""The process manager finishes transfers a crash left incomplete, from its checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from ledger.service import Ledger
from ledger.transfer_manager import TransferManager
from ledger.transfers.commands import RequestTransfer
from ledger.transfers.decider import TransferStatus
from tests.support.clock import Clock
from tests.writeside.stores import make_store as make_store
from tests.writeside.test_transfers import accounts, balance


class MemoryCheckpoint:
    """A checkpoint kept in the test (PostgreSQL's is tested with the runner)."""

    def __init__(self, position: int) -> None:
        self.position = position
        self.saves: list[int] = []

    def load(self) -> int:
        return self.position

    def save(self, position: int) -> None:
        self.position = max(self.position, position)
        self.saves.append(position)


def manager(ledger: Ledger, clock: Callable[..., Any], **options: Any) -> TransferManager:
    store: Any = ledger.handler.store
    # Started at the head: the shared event store holds other tests' transfers.
    checkpoint = MemoryCheckpoint(START[id(store)])
    return TransferManager(ledger.transfers, store, checkpoint, clock=clock, **options)


START: dict[int, int] = {}


@pytest.fixture(autouse=True)
def _head(ledger: Ledger) -> None:
    START[id(ledger.handler.store)] = ledger.handler.store.commit_position()


def abandon(ledger: Ledger, clock: Clock, a: str, b: str, tid: str, steps: int) -> None:
    """Request a transfer and do `steps` of its steps, as a command killed after them would."""
    ledger.transfers.request(
        RequestTransfer(
            transfer_id=tid, now=clock(), from_account=a, to_account=b, amount=500, currency="EUR"
        )
    )
    for _ in range(steps):
        ledger.transfers.step(tid)


def test_abandoned_transfers_are_finished_and_the_checkpoint_moves_past_them(
    ledger: Ledger, clock: Clock
) -> None:
    a, b, c = accounts(ledger, "100", "0", "0")
    abandon(ledger, clock, a, b, "req-" + a, 0)
    abandon(ledger, clock, a, b, "deb-" + a, 1)
    abandon(ledger, clock, a, c, "ref-" + a, 1)
    ledger.close_account(c)
    clock.advance(seconds=10)
    pm = manager(ledger, clock)

    assert pm.catch_up() == 0

    states = {t: ledger.transfer_state(t + a).status for t in ("req-", "deb-", "ref-")}
    assert states == {
        "req-": TransferStatus.COMPLETED,
        "deb-": TransferStatus.COMPLETED,
        "ref-": TransferStatus.FAILED,
    }
    assert (balance(ledger, a), balance(ledger, b)) == (9000, 1000)
    assert pm.finished == 3
    checkpoint = pm.checkpoint.load()
    assert checkpoint > 0
    assert pm.catch_up() == 0 and pm.finished == 3  # nothing left: a second pass does nothing


def test_a_young_incomplete_transfer_is_left_to_its_command_and_looked_at_again(
    ledger: Ledger, clock: Clock
) -> None:
    a, b = accounts(ledger, "100", "0")
    abandon(ledger, clock, a, b, "young-" + a, 1)
    pm = manager(ledger, clock, grace=timedelta(seconds=5))

    assert pm.catch_up() == 1
    assert ledger.transfer_state("young-" + a).status is TransferStatus.DEBITED
    assert pm.checkpoint.load() < ledger.transfer_state("young-" + a).posting_position + 1

    clock.advance(seconds=6)
    assert pm.catch_up() == 0
    assert ledger.transfer_state("young-" + a).status is TransferStatus.COMPLETED


def test_the_manager_racing_the_command_changes_nothing_twice(ledger: Ledger, clock: Clock) -> None:
    a, b = accounts(ledger, "100", "0")
    abandon(ledger, clock, a, b, "race-" + a, 1)
    pm = manager(ledger, clock, grace=timedelta(0))
    pm.catch_up()

    again = ledger.transfer(a, b, "5", "race-" + a)

    assert (again.replayed, again.state.status) == (True, TransferStatus.COMPLETED)
    assert (balance(ledger, a), balance(ledger, b)) == (9500, 500)


def test_with_nothing_pending_the_checkpoint_moves_to_the_head(
    ledger: Ledger, clock: Clock
) -> None:
    (a,) = accounts(ledger, "100")
    ledger.deposit(a, "1", "quiet-" + a)
    pm = manager(ledger, clock)

    assert pm.catch_up() == 0

    assert pm.checkpoint.load() == ledger.handler.store.commit_position()
