"""The books at a $all position: each account's state and postings, and the daily totals.

A pure fold of account events in $all order. The write model builds it from the event store
(ledger.writemodel) and verify compares the read models with it (projections.verify).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.accounts.daily import DayKey, DayTotals, add_posting, day_key
from ledger.accounts.decider import State, evolve, initial_state
from ledger.accounts.events import AccountEvent, Posting
from ledger.transfers.events import AnyTransferEvent


@dataclass
class Books:
    """Every account event at or before `position`, folded; `later_events` came after it."""

    position: int = 0
    accounts: dict[str, State] = field(default_factory=dict)
    last_positions: dict[str, int] = field(default_factory=dict)
    postings: dict[str, dict[int, Posting]] = field(default_factory=dict)
    daily: dict[DayKey, DayTotals] = field(default_factory=dict)
    transfers: dict[str, list[AnyTransferEvent]] = field(default_factory=dict)
    later_events: int = 0

    def add(self, account_id: str, revision: int, position: int, event: AccountEvent) -> None:
        """Fold one account event (the next of its stream, in $all order)."""
        self.accounts[account_id] = evolve(self.accounts.get(account_id, initial_state), event)
        self.last_positions[account_id] = position
        if isinstance(event, Posting):
            self.postings.setdefault(account_id, {})[revision] = event
            key = day_key(event)
            self.daily[key] = add_posting(self.daily.get(key, DayTotals()), event)

    def add_transfer(self, transfer_id: str, event: AnyTransferEvent) -> None:
        """Keep one event of a transfer's stream (the next of it, in $all order)."""
        self.transfers.setdefault(transfer_id, []).append(event)

    def moved_since(self, position: int) -> set[str]:
        """The accounts with an event after `position`."""
        return {a for a, p in self.last_positions.items() if p > position}
