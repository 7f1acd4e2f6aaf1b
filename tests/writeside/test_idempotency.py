"""Retries are idempotent: per transaction id through the Ledger, per event id in the store."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledger.accounts.commands import CommandMeta, Deposit
from ledger.accounts.decider import decide, evolve
from ledger.errors import TransactionConflictError
from ledger.handler import CommandHandler
from ledger.service import Ledger
from ledger.store import EventStore
from tests.support.clock import T0, Clock
from tests.writeside.stores import make_store as make_store

META = CommandMeta(correlation_id="corr-1", causation_id="cause-1", actor="test:retry")


@pytest.mark.parametrize("cache_size", [0, 64])
def test_the_same_transaction_twice_posts_once_and_answers_the_original_outcome(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str, cache_size: int
) -> None:
    ledger = make_ledger(cache_size=cache_size)
    ledger.open_account(account_id, "Ida", "EUR")
    first = ledger.deposit(account_id, "10.00", "t1", "salary")
    ledger.deposit(account_id, "2.50", "t2")

    again = ledger.deposit(account_id, "10.00", "t1", "salary")

    assert first.replayed is False
    assert again.replayed is True
    assert (again.revision, again.commit_position, again.balance) == (
        first.revision,
        first.commit_position,
        first.balance,
    )
    assert (again.balance, again.currency, again.transaction_id) == (1000, "EUR", "t1")
    assert len(store.read(account_id)) == 3


@pytest.mark.parametrize("cache_size", [0, 64])
def test_a_transaction_id_reused_for_other_content_is_refused_and_writes_nothing(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str, cache_size: int
) -> None:
    ledger = make_ledger(cache_size=cache_size)
    ledger.open_account(account_id, "Ida", "EUR")
    ledger.deposit(account_id, "10.00", "t1", "salary")
    before = store.read(account_id)

    attempts: list[Callable[[], object]] = [
        lambda: ledger.deposit(account_id, "11.00", "t1", "salary"),
        lambda: ledger.deposit(account_id, "10.00", "t1", "bonus"),
        lambda: ledger.withdraw(account_id, "10.00", "t1", "salary"),
        lambda: ledger.reverse(account_id, "t1", "t1"),
    ]
    for attempt in attempts:
        with pytest.raises(TransactionConflictError) as caught:
            attempt()
        assert caught.value.transaction_id == "t1"

    assert store.read(account_id) == before


def test_a_retry_later_in_time_is_still_the_same_command(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str
) -> None:
    clock = Clock()
    ledger = make_ledger(clock=clock)
    ledger.open_account(account_id, "Ida", "EUR")
    first = ledger.deposit(account_id, "10.00", "t1")

    clock.advance(hours=5)
    from_same_ledger = ledger.deposit(account_id, "10.00", "t1")
    later = Clock(T0)
    later.advance(days=3)
    from_another_process = make_ledger(clock=later, cache_size=0).deposit(account_id, "10.00", "t1")

    for again in (from_same_ledger, from_another_process):
        assert again.replayed is True
        assert (again.revision, again.commit_position, again.balance) == (
            first.revision,
            first.commit_position,
            first.balance,
        )
    assert len(store.read(account_id)) == 2


def test_a_racing_retry_with_other_content_conflicts_instead_of_passing_as_a_retry(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str
) -> None:
    # The slow ledger decides on a cached state that predates the fast ledger's deposit, so
    # both append the same transaction id at the same revision. The slow ledger's clock is
    # behind the fast one's but not behind its cached state, so only the append finds out.
    fast_clock = Clock()
    fast = make_ledger(clock=fast_clock, cache_size=0)
    slow = make_ledger(clock=Clock(), cache_size=64)
    fast.open_account(account_id, "Ida", "EUR")
    slow.deposit(account_id, "1.00", "t0")
    fast_clock.advance(hours=1)
    fast.deposit(account_id, "5.00", "x")

    with pytest.raises(TransactionConflictError):
        slow.deposit(account_id, "7.00", "x")

    recorded = [s for s in store.read(account_id) if s.event.type == "MoneyDeposited"]
    assert len(recorded) == 2
    assert slow.account(account_id).balance == 600


def test_a_racing_retry_with_the_same_content_answers_the_original_outcome(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str
) -> None:
    # Clocks as above; the two deposits of x differ in time, so the store cannot take the
    # slow one for a duplicate of the fast one's event: the handler has to find the replay.
    fast_clock = Clock()
    fast = make_ledger(clock=fast_clock, cache_size=0)
    slow = make_ledger(clock=Clock(), cache_size=64)
    fast.open_account(account_id, "Ida", "EUR")
    slow.deposit(account_id, "1.00", "t0")
    fast_clock.advance(hours=1)
    first = fast.deposit(account_id, "5.00", "x")

    again = slow.deposit(account_id, "5.00", "x")

    assert again.replayed is True
    assert (again.revision, again.commit_position, again.balance) == (
        first.revision,
        first.commit_position,
        first.balance,
    )
    assert len(store.read(account_id)) == 3


def test_appending_the_same_events_twice_at_one_revision_writes_them_once(
    store: EventStore, account_id: str
) -> None:
    handler = CommandHandler(store, cache_size=0)
    ledger = Ledger(handler, clock=Clock(), actor="test:retry")
    ledger.open_account(account_id, "Ida", "EUR")
    state = handler.load(account_id)
    events = []
    after = state
    for n, amount in enumerate(("1.00", "2.00")):
        deposit = Deposit(
            account_id=account_id, amount=amount, transaction_id=f"t{n}", now=T0, meta=META
        )
        decided = decide(deposit, after)
        events += decided
        after = evolve(after, decided[0])

    first = store.append(account_id, expected_revision=state.revision, events=events, meta=META)
    # A transport-level retry: the same events at the same expected revision, even with the
    # metadata of another attempt.
    other_meta = META.model_copy(update={"correlation_id": "corr-2"})
    second = store.append(
        account_id, expected_revision=state.revision, events=events, meta=other_meta
    )

    assert second == first
    assert len(store.read(account_id)) == 3
    assert handler.load(account_id).balance == 300
