"""Time order through the Ledger: writers with their own clocks on one account, and snapshots."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from ledger.accounts.snapshot import state_to_snapshot
from ledger.errors import ConcurrencyConflictError, EarlierThanLastEventError
from ledger.handler import CommandHandler
from ledger.memory_store import InMemoryEventStore
from ledger.service import Ledger
from ledger.store import EventStore
from tests.support.clock import T0, Clock
from tests.writeside.stores import make_store as make_store


def test_a_writer_whose_clock_is_behind_is_refused_and_writes_nothing(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str
) -> None:
    ahead = make_ledger(clock=Clock(T0 + timedelta(hours=1)))
    behind = make_ledger(clock=Clock(T0), cache_size=0)
    ahead.open_account(account_id, "Ida", "EUR")
    ahead.deposit(account_id, "10.00", "t1")
    before = store.read(account_id)

    with pytest.raises(EarlierThanLastEventError) as caught:
        behind.deposit(account_id, "5.00", "t2")

    assert "at 2024-05-01T12:00:00Z is earlier than the account's last event at " in str(
        caught.value
    )
    assert "2024-05-01T13:00:00Z" in str(caught.value)
    assert store.read(account_id) == before


def test_a_writer_ahead_moves_time_forward_for_every_writer(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str
) -> None:
    first, second = Clock(), Clock()
    one = make_ledger(clock=first)
    two = make_ledger(clock=second)
    one.open_account(account_id, "Ida", "EUR")
    one.deposit(account_id, "10.00", "t1")
    second.advance(minutes=30)
    two.deposit(account_id, "1.00", "t2")  # ahead: accepted, the account is now at 12:30

    with pytest.raises(EarlierThanLastEventError):
        one.deposit(account_id, "2.00", "t3")
    first.advance(minutes=30)  # the same time as the last event is allowed
    one.deposit(account_id, "2.00", "t3")

    times = [stored.event.occurred_at for stored in store.read(account_id)]
    assert times == sorted(times)
    assert one.account(account_id).balance == 1300


def test_a_retry_after_later_postings_is_a_replay_even_from_a_clock_behind(
    make_ledger: Callable[..., Ledger], account_id: str
) -> None:
    clock = Clock()
    ledger = make_ledger(clock=clock)
    ledger.open_account(account_id, "Ida", "EUR")
    first = ledger.deposit(account_id, "10.00", "t1")
    clock.advance(days=1)
    ledger.deposit(account_id, "1.00", "t2")

    again = make_ledger(clock=Clock(T0), cache_size=0).deposit(account_id, "10.00", "t1")

    assert again.replayed is True
    assert (again.revision, again.balance) == (first.revision, first.balance)


class _Overtaking:
    """A clock whose first reading lets another writer append a later posting right after."""

    def __init__(self, other: Callable[[], object], readings: list[datetime]) -> None:
        self.other: Callable[[], object] | None = other
        self.readings = readings

    def __call__(self) -> datetime:
        now = self.readings.pop(0)
        if self.other is not None:
            other, self.other = self.other, None
            other()
        return now


@pytest.mark.parametrize("cache_size", [0, 64])
def test_a_writer_overtaken_between_its_clock_and_its_append_posts_at_its_next_reading(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str, cache_size: int
) -> None:
    # Two writers on one clock: A reads 12:00:01, B posts at 12:00:02 before A appends. A is
    # not backdating, only overtaken; with a cache it even meets B's event as a conflict.
    fast = make_ledger(clock=Clock(T0 + timedelta(seconds=2)))
    slow = make_ledger(clock=Clock(T0), cache_size=cache_size)
    slow.open_account(account_id, "Ida", "EUR")
    slow.deposit(account_id, "1.00", "t0")
    readings = [T0 + timedelta(seconds=1), T0 + timedelta(seconds=3)]
    slow.clock = _Overtaking(lambda: fast.deposit(account_id, "5.00", "fast"), readings)

    outcome = slow.deposit(account_id, "2.00", "slow")

    assert outcome.replayed is False
    last = store.read(account_id)[-1].event
    assert (last.occurred_at, outcome.balance) == (T0 + timedelta(seconds=3), 800)


def test_a_fixed_clock_behind_stays_refused_however_often_it_is_read(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str
) -> None:
    ahead = make_ledger(clock=Clock(T0 + timedelta(seconds=1)))
    ahead.open_account(account_id, "Ida", "EUR")
    with pytest.raises(EarlierThanLastEventError):
        make_ledger(clock=Clock(T0)).deposit(account_id, "5.00", "t1")
    assert len(store.read(account_id)) == 1


def test_an_old_version_snapshot_is_ignored_and_the_stream_folded_for_the_time() -> None:
    store = InMemoryEventStore()
    clock = Clock()
    writer = Ledger(CommandHandler(store), clock=clock, actor="test")
    writer.open_account("acc-t", "Ida", "EUR")
    clock.advance(days=2)
    writer.deposit("acc-t", "10.00", "t1")
    # What version 1 wrote: no last event time. Its balance is wrong on purpose, so that a
    # load that used it would show.
    old = json.loads(state_to_snapshot(writer.account("acc-t")))
    old["snapshot_version"] = 1
    del old["account"]["last_event_at"]
    old["account"]["balance"] = 1
    store.write_snapshot("acc-t", json.dumps(old).encode())

    reader = Ledger(CommandHandler(store, cache_size=0), clock=Clock(), actor="test")

    assert reader.account("acc-t").balance == 1000
    assert reader.account("acc-t").last_event_at == T0 + timedelta(days=2)
    with pytest.raises(EarlierThanLastEventError):
        reader.deposit("acc-t", "1.00", "t2")


def test_a_writer_overtaken_at_every_attempt_gets_a_conflict_that_is_safe_to_retry(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str
) -> None:
    fast_clock = Clock(T0)
    fast = make_ledger(clock=fast_clock)
    fast.open_account(account_id, "Ida", "EUR")
    posted = iter(range(1000))

    def overtaken() -> datetime:
        # Each reading is followed, before the append, by another writer's later posting.
        now = fast_clock.now + timedelta(seconds=1)
        fast_clock.now = now + timedelta(seconds=1)
        fast.deposit(account_id, "1.00", f"fast-{next(posted)}")
        return now

    slow = make_ledger(clock=overtaken, cache_size=0, max_attempts=4)
    with pytest.raises(ConcurrencyConflictError, match="safe to retry"):
        slow.deposit(account_id, "2.00", "slow")
    assert all(
        getattr(stored.event, "transaction_id", "") != "slow" for stored in store.read(account_id)
    )
