"""The transfer process manager: a checkpointed catch-up over $all that finishes any transfer a
crash left incomplete (the command path normally finishes it before it returns)."""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Protocol

from ledger.accounts.events import MoneyWithdrawn, PostingKind
from ledger.errors import LedgerError
from ledger.transfer_process import TransferProcess
from ledger.transfer_store import LedgerStore as Store
from ledger.transfer_store import TransferStore
from ledger.transfers.decider import (
    TransferState,
    TransferStatus,
    evolve_transfer,
    initial_transfer_state,
)
from ledger.transfers.events import TransferCompleted, TransferFailed

log = logging.getLogger("ledger.transfers.manager")


class Checkpoint(Protocol):
    """Where the manager is in $all, kept apart from the event store (PostgreSQL in the CLI)."""

    def load(self) -> int:
        """The position the manager resumes at (0: the start)."""
        ...

    def save(self, position: int) -> None:
        """Remember that every transfer touched before `position` is final."""
        ...


def touches(store: Store, from_position: int) -> Iterator[tuple[int, str, bool]]:
    """(position, transfer id, settled) in $all order: each transfer event, and each debit
    posting of a transfer (a debit that raced a rejection must be seen even if no transfer
    event follows it). `settled`: the event itself ends the transfer."""
    final = (TransferCompleted, TransferFailed)
    transfers = (
        (s.commit_position, tid, isinstance(s.event, final))
        for tid, s in store.read_all_transfers(from_position=from_position)
    )
    debits = (
        (s.commit_position, e.transfer_id, False)
        for _, s in store.read_all(from_position=from_position)
        if isinstance(e := s.event, MoneyWithdrawn)
        and e.kind is PostingKind.TRANSFER_OUT
        and e.transfer_id is not None
    )
    return heapq.merge(transfers, debits)


class TransferManager:
    """Finishes transfers left incomplete: idempotent, and safe to race with the command path.

    A transfer whose last event is younger than `grace` is left to the command that is most
    likely still running it (racing it would be safe, only wasteful); the checkpoint then
    stays before it, so it is looked at again on the next pass.
    """

    def __init__(
        self,
        process: TransferProcess,
        store: Store,
        checkpoint: Checkpoint,
        *,
        clock: Callable[[], datetime],
        grace: timedelta = timedelta(seconds=2),
    ) -> None:
        self.process = process
        self.store = store
        self.checkpoint = checkpoint
        self.clock = clock
        self.grace = grace
        self.finished = 0  # transfers this manager ran to a final state

    def catch_up(self) -> int:
        """One pass from the checkpoint to the head; returns how many transfers are pending."""
        start = self.checkpoint.load()
        # Every touch up to the head read now is seen by this pass: with nothing pending, the
        # next pass starts there, not at the last transfer (so quiet stretches cost nothing).
        head = self.store.commit_position()
        done: dict[str, bool] = {}
        safe = start
        blocked = False
        for position, tid, settled in touches(self.store, start):
            if settled and tid not in done:
                done[tid] = True
            if tid not in done:
                done[tid] = self._finish(tid)
            blocked = blocked or not done[tid]
            if not blocked:
                safe = position
        if not blocked:
            safe = max(safe, head)
        if safe > start:
            self.checkpoint.save(safe)
        return sum(1 for final in done.values() if not final)

    def _finish(self, transfer_id: str) -> bool:
        """Run the transfer if it needs it; True when it is final (nothing left to do)."""
        state, _ = self.process.load(transfer_id)
        quiet = state.updated_at is None or self.clock() - state.updated_at >= self.grace
        if state.status is TransferStatus.REJECTED and not state.refunded:
            quiet = True  # a stray debit is never the command path's to put back
        elif state.final:
            return True
        if not quiet:
            return False
        try:
            result = self.process.run(transfer_id)
        except LedgerError as exc:
            log.warning("transfer %s could not be finished yet: %s", transfer_id, exc)
            return False
        if result.state.final:
            self.finished += 1
        return result.state.final

    def follow(self, stop: threading.Event, *, interval: float = 0.2) -> None:
        """Catch up again and again until `stop` is set (the projection runner's companion)."""
        while not stop.is_set():
            try:
                self.catch_up()
            except LedgerError as exc:
                log.warning("transfer manager pass failed (retrying): %s", exc)
            stop.wait(interval)


def unfinished_transfers(store: TransferStore, before: datetime) -> list[TransferState]:
    """Every transfer not final whose last event is older than `before`, oldest first: what
    the manager should have finished (verify reports them)."""
    states: dict[str, TransferState] = {}
    for transfer_id, stored in store.read_all_transfers():
        states[transfer_id] = evolve_transfer(
            states.get(transfer_id, initial_transfer_state), stored.event
        )
    stuck = [
        s
        for s in states.values()
        if not s.final and s.updated_at is not None and s.updated_at < before
    ]
    return sorted(stuck, key=lambda s: (s.updated_at or before, s.transfer_id))
