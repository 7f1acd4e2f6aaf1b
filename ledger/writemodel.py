"""Folds an account from the write model (its stream), optionally up to a $all position."""

from __future__ import annotations

from collections.abc import Callable

from ledger.accounts.decider import State, evolve, initial_state
from ledger.accounts.events import Posting
from ledger.store import EventStore


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


def write_model_fold(
    store: EventStore,
) -> Callable[[str, int | None], tuple[int, list[int]] | None]:
    """The fold verify and rebuild compare read models with: (balance, posting revisions) of an
    account up to a $all position, or None when its stream does not exist."""

    def fold(account_id: str, upto: int | None) -> tuple[int, list[int]] | None:
        state, revisions = fold_account(store, account_id, upto)
        return (state.balance, revisions) if state.revision >= 0 else None

    return fold
