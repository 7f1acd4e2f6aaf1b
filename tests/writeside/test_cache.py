"""The state cache is only a head start: decisions always rest on the store's current state."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from ledger.accounts.commands import CommandMeta
from ledger.accounts.events import AccountEvent
from ledger.errors import AccountClosedError, ConcurrencyConflictError, InsufficientFundsError
from ledger.handler import CommandHandler
from ledger.service import Ledger
from ledger.store import EventStore
from tests.support.clock import Clock
from tests.writeside.stores import DelegatingStore
from tests.writeside.stores import make_store as make_store


def test_a_withdrawal_that_only_another_process_made_possible_succeeds(
    make_ledger: Callable[..., Ledger], account_id: str
) -> None:
    cached = make_ledger(cache_size=64)
    other = make_ledger(cache_size=64)
    cached.open_account(account_id, "Cleo", "EUR")
    cached.deposit(account_id, "10.00", "t1")
    other.deposit(account_id, "50.00", "t2")

    outcome = cached.withdraw(account_id, "40.00", "t3")

    assert cached.handler.stats.cache_hits >= 2
    assert (outcome.replayed, outcome.balance) == (False, 2_000)
    assert outcome.revision == 3


def test_an_insufficient_funds_refusal_is_based_on_the_fresh_balance(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str
) -> None:
    cached = make_ledger(cache_size=64)
    other = make_ledger(cache_size=0)
    cached.open_account(account_id, "Cleo", "EUR")
    cached.deposit(account_id, "20.00", "t1")
    other.withdraw(account_id, "15.00", "t2")
    before = store.read(account_id)

    with pytest.raises(InsufficientFundsError) as refused:
        cached.withdraw(account_id, "10.00", "t3")

    assert cached.handler.stats.cache_hits >= 1
    assert refused.value.balance == 500
    assert store.read(account_id) == before
    assert cached.withdraw(account_id, "5.00", "t4").balance == 0


def test_a_no_op_on_a_stale_cache_is_checked_against_the_store(
    make_ledger: Callable[..., Ledger], account_id: str
) -> None:
    cached = make_ledger(cache_size=64)
    other = make_ledger(cache_size=0)
    cached.open_account(account_id, "Cleo", "EUR")
    cached.set_overdraft_limit(account_id, "100.00")
    other.set_overdraft_limit(account_id, "0")

    outcome = cached.set_overdraft_limit(account_id, "100.00")

    assert outcome.replayed is False
    assert other.account(account_id).overdraft_limit == 10_000


def test_a_stale_cache_does_not_hide_a_close_by_another_process(
    make_ledger: Callable[..., Ledger], account_id: str
) -> None:
    cached = make_ledger(cache_size=64)
    other = make_ledger(cache_size=0)
    cached.open_account(account_id, "Cleo", "EUR")
    other.close_account(account_id)

    with pytest.raises(AccountClosedError):
        cached.open_account(account_id, "Cleo", "EUR")
    with pytest.raises(AccountClosedError):
        cached.deposit(account_id, "1.00", "t1")


class InterferingStore(DelegatingStore):
    """A store on which another writer always appends just before this one (a hot account)."""

    def __init__(self, store: EventStore, rival: Ledger) -> None:
        super().__init__(store)
        self.rival = rival
        self.appends = 0

    def append(
        self,
        account_id: str,
        *,
        expected_revision: int,
        events: Sequence[AccountEvent],
        meta: CommandMeta,
    ) -> int:
        self.appends += 1
        self.rival.deposit(account_id, "0.01", f"rival-{self.appends}")
        return super().append(
            account_id, expected_revision=expected_revision, events=events, meta=meta
        )


def test_retries_are_bounded_and_give_up_with_a_concurrency_conflict(
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[], EventStore],
    store: EventStore,
    account_id: str,
) -> None:
    rival = make_ledger(cache_size=0)
    rival.open_account(account_id, "Cleo", "EUR")
    naps: list[float] = []
    handler = CommandHandler(
        InterferingStore(make_store(), rival), cache_size=0, max_attempts=3, sleep=naps.append
    )
    ledger = Ledger(handler, clock=Clock(), actor="test:cache")

    with pytest.raises(ConcurrencyConflictError):
        ledger.deposit(account_id, "5.00", "mine")

    assert handler.stats.conflicts == 3 and len(naps) == 3
    assert all(0 <= nap <= 0.002 * 3 for nap in naps)
    types = [stored.event.type for stored in store.read(account_id)]
    assert types == ["AccountOpened"] + ["MoneyDeposited"] * 3
