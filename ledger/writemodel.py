"""The write model folded from the event store: one account's stream, or the books at a $all
position (every account and transfer stream up to it) that verify and rebuild compare read
models with."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from ledger.accounts.books import Books
from ledger.accounts.decider import State, evolve, initial_state
from ledger.accounts.events import Posting
from ledger.store import EventStore
from ledger.transfer_store import LedgerStore


def fold_account(
    store: EventStore, account_id: str, upto_position: int | None = None
) -> tuple[State, list[int]]:
    """The account's state and the revisions of its postings, from its stream alone."""
    state = initial_state
    postings: list[int] = []
    for stored in store.read(account_id):
        if upto_position is not None and stored.commit_position > upto_position:
            break
        state = evolve(state, stored.event)
        if isinstance(stored.event, Posting):
            postings.append(stored.revision)
    return state, postings


class WriteModelFold:
    """The books at a $all position, read from $all; called again with a later position it
    folds only the events in between (the Books it returned before moves forward with it)."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self.books = Books()
        self._resume = 0  # the commit position of the last event folded (0: none yet)

    def __call__(self, upto: int) -> Books:
        """Every event at or before `upto` folded; later account events are only counted."""
        if upto < self.books.position:
            self.books, self._resume = Books(), 0  # an earlier position: fold from the start
        later = 0
        for position, account_id, transfer_id, stored in self._events():
            if position <= self._resume and self._resume:
                continue  # the event the read resumed at, folded already
            if position <= upto and not later:
                if transfer_id:
                    self.books.add_transfer(transfer_id, stored.event)
                else:
                    self.books.add(account_id, stored.revision, position, stored.event)
                self._resume = position
            elif not transfer_id:
                later += 1
        self.books.position, self.books.later_events = upto, later
        return self.books

    def _events(self) -> Iterator[tuple[int, str, str, Any]]:
        """(position, account id, transfer id, stored event) of both kinds, in $all order."""
        accounts = (
            (s.commit_position, account_id, "", s)
            for account_id, s in self.store.read_all(from_position=self._resume)
        )
        transfers = (
            (s.commit_position, "", transfer_id, s)
            for transfer_id, s in self.store.read_all_transfers(from_position=self._resume)
        )
        return heapq.merge(accounts, transfers, key=lambda item: item[0])


def write_model_fold(store: LedgerStore) -> WriteModelFold:
    """The write-model fold verify and rebuild compare read models with (see WriteModelFold)."""
    return WriteModelFold(store)
