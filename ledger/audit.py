"""Who did what, when: account events with the audit fields of their stored metadata."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from ledger.accounts.events import AccountEvent, Posting, PostingReversed
from ledger.store import EventStore, StoredEvent


@dataclass(frozen=True)
class AuditEntry:
    """One account event with where it is (stream revision, $all position) and who caused it."""

    account_id: str
    revision: int
    position: int
    event: AccountEvent
    actor: str | None
    correlation_id: str | None
    causation_id: str | None

    @property
    def occurred_at(self) -> dt.datetime:
        """When the command that caused the event ran (the caller's clock)."""
        return self.event.occurred_at

    @property
    def transaction_id(self) -> str | None:
        """The posting's transaction id (None for events that move no money)."""
        return self.event.transaction_id if isinstance(self.event, Posting) else None


def audit_entry(account_id: str, stored: StoredEvent) -> AuditEntry:
    """The event with its audit fields; metadata missing or unreadable gives None fields (an
    event written by another tool is still shown, only without who wrote it)."""
    try:
        meta = json.loads(stored.metadata) if stored.metadata.strip() else {}
    except ValueError:
        meta = {}
    if not isinstance(meta, dict):
        meta = {}

    def field(name: str) -> str | None:
        value = meta.get(name)
        return value if isinstance(value, str) else None

    return AuditEntry(
        account_id,
        stored.revision,
        stored.commit_position,
        stored.event,
        field("actor"),
        field("correlation_id"),
        field("causation_id"),
    )


def account_history(store: EventStore, account_id: str) -> list[AuditEntry]:
    """Every event of the account's stream, oldest first, with its audit fields."""
    return [audit_entry(account_id, s) for s in store.read(account_id)]


@dataclass(frozen=True)
class TransactionEvents:
    """One transaction on one account: its events and the reversals that undid it."""

    account_id: str
    events: list[AuditEntry]
    reversed_by: list[AuditEntry]


def transaction_events(
    store: EventStore, account_id: str, transaction_id: str
) -> TransactionEvents | None:
    """The transaction's events on the account, and the reversals of it; None if it has none."""
    history = account_history(store, account_id)
    events = [e for e in history if e.transaction_id == transaction_id]
    if not events:
        return None
    reversed_by = [
        e
        for e in history
        if isinstance(e.event, PostingReversed) and e.event.reverses == transaction_id
    ]
    return TransactionEvents(account_id, events, reversed_by)
