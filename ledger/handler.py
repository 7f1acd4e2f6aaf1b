"""The command handler: load (snapshot + tail), fold, decide, append at the revision read, retry."""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ledger.accounts.commands import (
    AccountCommand,
    CloseAccount,
    Deposit,
    Reverse,
    Withdraw,
    make_command,
)
from ledger.accounts.decider import (
    State,
    Status,
    decide,
    evolve,
    find_transaction,
    initial_state,
)
from ledger.accounts.snapshot import state_from_snapshot, state_to_snapshot
from ledger.errors import ConcurrencyConflictError, EarlierThanLastEventError, LedgerError
from ledger.store import EventStore, VersionConflict


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a command did: the account's revision and balance after it, where it is in $all."""

    account_id: str
    transaction_id: str | None
    revision: int
    commit_position: int
    balance: int
    currency: str
    replayed: bool  # nothing was written: the command had already been applied


@dataclass
class HandlerStats:
    """Counters that tests and benchmarks read."""

    commands: int = 0
    conflicts: int = 0
    snapshots_written: int = 0
    cache_hits: int = 0


class CommandHandler:
    """Handles account commands with optimistic concurrency; bounded retries on conflicts."""

    def __init__(
        self,
        store: EventStore,
        *,
        snapshot_every: int = 500,
        use_snapshots: bool = True,
        cache_size: int = 1024,
        max_attempts: int = 12,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.snapshot_every = snapshot_every
        self.use_snapshots = use_snapshots
        self.cache_size = cache_size
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.stats = HandlerStats()
        self._cache: OrderedDict[str, State] = OrderedDict()
        # Threads of one process may share a handler (their appends share one call, see
        # ledger.pipeline): the cache's read-and-reorder steps must not interleave.
        self._cache_lock = threading.Lock()

    # 1 load: the newest usable snapshot plus the events after it (2 fold on the way).
    def load(self, account_id: str) -> State:
        """The account's current state, rebuilt from the write model."""
        state = initial_state
        if self.use_snapshots:
            data = self.store.read_snapshot(account_id)
            snapshot = state_from_snapshot(data) if data is not None else None
            if snapshot is not None and snapshot.account_id == account_id:
                state = snapshot
        return self._catch_up(account_id, state)

    def current(self, account_id: str) -> State:
        """The account as this handler last saw it (cached), else loaded; may be behind the
        store, so only for what a later decision re-checks."""
        state = self._cached(account_id)
        if state is None:
            state = self.load(account_id)
            if state.status is not Status.NEW:
                self._remember(account_id, state)
        return state

    def _catch_up(self, account_id: str, state: State) -> State:
        for stored in self.store.read(account_id, from_revision=state.revision + 1):
            state = evolve(state, stored.event)
        return state

    def handle(self, command: AccountCommand) -> Outcome:
        """Decide and append; on a version conflict re-read and re-decide, boundedly."""
        account_id = command.account_id
        state = self._cached(account_id)
        fresh = state is None
        attempt = 0
        while attempt < self.max_attempts:
            if state is None:
                state = self.load(account_id)
            # 3 decide: business refusals and invalid input raise here, before any write.
            try:
                events = decide(command, state)
            except LedgerError:
                if fresh:
                    raise
                # A refusal must never rest on a cached state that may be behind the store.
                state, fresh = self._catch_up(account_id, state), True
                continue
            if not events:
                if not fresh:
                    # Neither may a no-op (the same overdraft limit, an open or close already
                    # done): a cached state can be behind a write of another process.
                    state, fresh = self._catch_up(account_id, state), True
                    continue
                self._remember(account_id, state)
                return self._replayed(command, state)
            try:
                # 4 append at the revision the decision was made on.
                position = self.store.append(
                    account_id,
                    expected_revision=state.revision,
                    events=events,
                    meta=command.meta,
                )
            except VersionConflict:
                # 5 someone else wrote first: re-read only the tail and decide again.
                attempt += 1
                self.stats.conflicts += 1
                state, fresh = self._catch_up(account_id, state), True
                self.sleep(random.uniform(0, 0.002 * attempt))
                continue
            before = state.revision
            for event in events:
                state = evolve(state, event)
            self.stats.commands += 1
            self._remember(account_id, state)
            self._maybe_snapshot(account_id, before, state)
            return self._written(command, state, position)
        with self._cache_lock:
            self._cache.pop(account_id, None)
        raise ConcurrencyConflictError(
            f"account {account_id} kept changing while the command was being decided "
            f"({self.max_attempts} attempts); it is safe to retry with the same transaction id"
        )

    def _cached(self, account_id: str) -> State | None:
        if not self.cache_size:
            return None
        with self._cache_lock:
            state = self._cache.get(account_id)
            if state is not None:
                self.stats.cache_hits += 1
                self._cache.move_to_end(account_id)
        return state

    def _remember(self, account_id: str, state: State) -> None:
        if not self.cache_size:
            return
        with self._cache_lock:
            self._cache[account_id] = state
            self._cache.move_to_end(account_id)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _maybe_snapshot(self, account_id: str, before: int, state: State) -> None:
        if not self.use_snapshots or self.snapshot_every <= 0:
            return
        if (state.revision + 1) // self.snapshot_every > (before + 1) // self.snapshot_every:
            self.store.write_snapshot(account_id, state_to_snapshot(state))
            self.stats.snapshots_written += 1

    def _written(self, command: AccountCommand, state: State, position: int) -> Outcome:
        return Outcome(
            command.account_id,
            getattr(command, "transaction_id", None),
            state.revision,
            position,
            state.balance,
            state.currency,
            replayed=False,
        )

    def _replayed(self, command: AccountCommand, state: State) -> Outcome:
        """The original outcome of a command that had already been applied."""
        revision, balance = state.revision, state.balance
        transaction_id = None
        if isinstance(command, Deposit | Withdraw | Reverse):
            transaction_id = command.transaction_id
            record = find_transaction(state, transaction_id)
            if record is not None:
                revision, balance = record.revision, record.balance_after
        elif isinstance(command, CloseAccount):
            balance = 0
        stored = (
            self.store.read_one(command.account_id, revision=revision) if revision >= 0 else None
        )
        return Outcome(
            command.account_id,
            transaction_id,
            revision,
            stored.commit_position if stored else 0,
            balance,
            state.currency,
            replayed=True,
        )


def handle_now(
    handler: CommandHandler, command: AccountCommand, clock: Callable[[], datetime]
) -> Outcome:
    """Handle a command stamped with the clock, re-stamped when a later event overtook it.

    The clock is read before the account is loaded: another writer may append a later event
    in between, and the handler re-decides the same command on that conflict. Such a command
    is not backdated, only overtaken, so it is decided again at a fresh reading of the clock,
    as boundedly as a conflict; a clock still behind the account's last event is refused.
    """
    for _ in range(handler.max_attempts):
        try:
            return handler.handle(command)
        except EarlierThanLastEventError as exc:
            now = clock()
            if now < exc.last_event_at:
                raise
            command = make_command(type(command), {**dict(command), "now": now})
    raise ConcurrencyConflictError(
        f"account {command.account_id} kept receiving later postings while the command was "
        f"being decided ({handler.max_attempts} attempts); it is safe to retry with "
        "the same transaction id"
    )
