"""The write model's books at a $all position: folded from $all, moved forward incrementally,
later events counted as lag, the daily totals by the projection's own rule."""

from __future__ import annotations

from ledger.accounts.daily import DayTotals
from ledger.handler import CommandHandler
from ledger.memory_store import InMemoryEventStore
from ledger.service import Ledger
from ledger.writemodel import write_model_fold
from tests.support.clock import T0, Clock


def test_the_books_at_a_position_hold_what_was_written_up_to_it_and_count_the_rest() -> None:
    store = InMemoryEventStore()
    ledger = Ledger(CommandHandler(store), clock=Clock(), actor="test")
    ledger.open_account("alice", "Alice", "EUR")
    first = ledger.deposit("alice", "1.00", "tx-1").commit_position
    ledger.withdraw("alice", "0.40", "tx-2")
    ledger.open_account("bob", "Bob", "EUR")
    fold = write_model_fold(store)

    early = fold(first)

    assert (early.position, early.later_events) == (first, 2)
    assert set(early.accounts) == {"alice"} and early.accounts["alice"].balance == 100
    assert sorted(early.postings["alice"]) == [1]

    head = fold(store.commit_position())

    assert head is early  # moved forward in place: only the later events were read
    assert head.later_events == 0 and set(head.accounts) == {"alice", "bob"}
    assert head.accounts["alice"].balance == 60 and sorted(head.postings["alice"]) == [1, 2]
    assert head.daily == {("EUR", T0.date()): DayTotals(100, 40, 0, 2)}
    assert head.moved_since(first) == {"alice", "bob"}

    again = fold(first)

    assert again.accounts["alice"].balance == 100 and again.later_events == 2
