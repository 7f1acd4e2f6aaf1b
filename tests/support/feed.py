"""An $all feed built with the pure decider, for specs that drive the Applier directly."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg

from ledger.accounts.books import Books
from ledger.accounts.commands import (
    AccountCommand,
    ChangeOverdraftLimit,
    CloseAccount,
    Command,
    CommandMeta,
    Deposit,
    OpenAccount,
    PostTransferLeg,
    Reverse,
    TransferStep,
    Withdraw,
    make_command,
)
from ledger.accounts.decider import State, decide, evolve, initial_state
from ledger.accounts.events import AccountEvent, encode_metadata, serialise_event
from ledger.transfers.events import AnyTransferEvent, serialise_transfer_event
from projections.applier import PROJECTIONS, Applier, BatchResult
from projections.feed import ProjectedEvent, transfer_key
from tests.support.clock import T0

META = CommandMeta(correlation_id="corr-1", causation_id="cause-1", actor="test:projections")


class Feed:
    """The $all feed of some accounts, each command decided by the pure decider."""

    def __init__(self, start_position: int = 1000) -> None:
        self._positions = itertools.count(start_position, 100)
        self.states: dict[str, State] = {}
        self.events: list[ProjectedEvent] = []
        self.decoded: dict[int, AccountEvent | AnyTransferEvent] = {}
        self.transfer_revisions: dict[str, int] = {}

    def _do(
        self, command_type: type[Command], account_id: str, now: datetime, **fields: Any
    ) -> list[ProjectedEvent]:
        """Decide a command on the account's state and record the events it causes."""
        command = make_command(
            command_type, {"account_id": account_id, "now": now, "meta": META, **fields}
        )
        assert isinstance(command, AccountCommand)
        produced = decide(command, self.states.get(account_id, initial_state))
        return self.append(account_id, *produced, recorded_at=now)

    def append(
        self,
        account_id: str,
        *events: AccountEvent,
        recorded_at: datetime = T0,
        metadata: bytes | None = None,
        encode: Callable[[AccountEvent], bytes] | None = None,
    ) -> list[ProjectedEvent]:
        """Record events of an account (folded into its state) as the subscription gives them.

        `metadata` and `encode` store events the way another writer (or version) would have.
        """
        out = []
        state = self.states.get(account_id, initial_state)
        for event in events:
            state = evolve(state, event)
            event_type, data = serialise_event(event)
            if encode is not None:
                data = encode(event)
            stored = ProjectedEvent(
                account_id,
                state.revision,
                next(self._positions),
                uuid.uuid4(),
                event_type,
                data,
                metadata if metadata is not None else encode_metadata(event, META),
                recorded_at,
            )
            self.decoded[stored.position] = event
            out.append(stored)
        self.states[account_id] = state
        self.events.extend(out)
        return out

    def open(
        self, account_id: str, currency: str = "EUR", limit: str = "0", now: datetime = T0
    ) -> list[ProjectedEvent]:
        """OpenAccount for Alice Example."""
        return self._do(
            OpenAccount,
            account_id,
            now,
            owner="Alice Example",
            currency=currency,
            overdraft_limit=limit,
        )

    def deposit(
        self, account_id: str, amount: str, tx: str, now: datetime = T0, description: str = ""
    ) -> list[ProjectedEvent]:
        """Deposit an amount ("12.34")."""
        return self._do(
            Deposit, account_id, now, amount=amount, transaction_id=tx, description=description
        )

    def withdraw(
        self, account_id: str, amount: str, tx: str, now: datetime = T0
    ) -> list[ProjectedEvent]:
        """Withdraw an amount."""
        return self._do(Withdraw, account_id, now, amount=amount, transaction_id=tx)

    def reverse(
        self, account_id: str, reverses: str, tx: str, now: datetime = T0
    ) -> list[ProjectedEvent]:
        """Reverse an earlier posting of the account."""
        return self._do(Reverse, account_id, now, reverses=reverses, transaction_id=tx)

    def change_limit(self, account_id: str, limit: str, now: datetime = T0) -> list[ProjectedEvent]:
        """Change the overdraft limit."""
        return self._do(ChangeOverdraftLimit, account_id, now, limit=limit)

    def close(self, account_id: str, now: datetime = T0) -> list[ProjectedEvent]:
        """Close the account."""
        return self._do(CloseAccount, account_id, now)

    def leg(
        self,
        account_id: str,
        step: TransferStep,
        transfer_id: str,
        counterparty: str,
        amount: int,
        now: datetime = T0,
        currency: str = "EUR",
    ) -> list[ProjectedEvent]:
        """A transfer's debit, credit or refund on the account (amount in minor units)."""
        return self._do(
            PostTransferLeg,
            account_id,
            now,
            transfer_id=transfer_id,
            step=step,
            counterparty=counterparty,
            amount=amount,
            currency=currency,
        )

    def transfer(self, *events: AnyTransferEvent, now: datetime = T0) -> list[ProjectedEvent]:
        """Record events of a transfer's own stream as the subscription gives them."""
        out = []
        for event in events:
            tid = event.transfer_id
            revision = self.transfer_revisions.get(tid, -1) + 1
            self.transfer_revisions[tid] = revision
            event_type, data = serialise_transfer_event(event)
            stored = ProjectedEvent(
                transfer_key(tid),
                revision,
                next(self._positions),
                uuid.uuid4(),
                event_type,
                data,
                b"{}",
                now,
            )
            self.decoded[stored.position] = event
            out.append(stored)
        self.events.extend(out)
        return out

    def fold(self, upto: int) -> Books:
        """A fake write-model fold over this feed (the shape verify() takes): its books at a
        position, folded by the same code as the real one."""
        books = Books(position=upto)
        for e in self.events:
            event = self.decoded[e.position]
            if e.position <= upto:
                if e.of_transfer:
                    assert not isinstance(event, AccountEvent)
                    books.add_transfer(event.transfer_id, event)
                else:
                    assert isinstance(event, AccountEvent)
                    books.add(e.account_id, e.revision, e.position, event)
            elif not e.of_transfer:
                books.later_events += 1
        return books


def project(
    conn: psycopg.Connection[Any], events: Sequence[ProjectedEvent], upto: int | None = None
) -> BatchResult:
    """Apply one batch to every live projection, moving the checkpoints to `upto`."""
    if upto is None:
        upto = events[-1].position if events else 0
    return Applier(conn, list(PROJECTIONS.values())).apply_batch(events, upto)


def project_each_twice(conn: psycopg.Connection[Any], events: Sequence[ProjectedEvent]) -> None:
    """Apply every event at least twice: overlapping batches, then the whole feed again."""
    size = 4
    for start in range(0, len(events), size // 2):
        project(conn, events[start : start + size])
    project(conn, events)


def metadata(schema_version: int) -> bytes:
    """Stored event metadata claiming a schema version."""
    return json.dumps({"actor": "test", "schema_version": schema_version}).encode()
