"""Loading through snapshots equals a full replay; bad or foreign snapshots are ignored."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from esdbclient import EventStoreDBClient

from ledger.accounts.commands import CommandMeta, Deposit, OpenAccount, Reverse, Withdraw
from ledger.accounts.decider import State, decide, evolve, initial_state
from ledger.accounts.events import AccountEvent, PostingReversed
from ledger.accounts.snapshot import SNAPSHOT_VERSION, state_from_snapshot, state_to_snapshot
from ledger.accounts.window import WINDOW_SIZE
from ledger.errors import BusinessRuleError, TransactionConflictError
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.money import format_minor_units
from ledger.service import Ledger
from ledger.store import EventStore
from ledger.streams import snapshot_stream
from tests.support.clock import T0
from tests.support.ids import new_account_id
from tests.writeside.stores import make_store as make_store

MAX_APPEND_SIZE = 1_048_576
META = CommandMeta(correlation_id="corr-s", causation_id="cause-s", actor="test:snapshots")


def build_history(ledger: Ledger, account_id: str, postings: int, seed: int = 7) -> None:
    """Deposits, withdrawals into the overdraft, reversals and an overdraft change."""
    rng = random.Random(seed)
    ledger.open_account(account_id, "Sam", "EUR", overdraft_limit="20.00")
    reversible: list[str] = []
    for n in range(postings):
        if n == postings // 2:
            ledger.set_overdraft_limit(account_id, "80.00")
        amount = format_minor_units(rng.randint(1, 5_000), "EUR")
        try:
            if n % 11 == 10 and reversible:
                target = reversible.pop(rng.randrange(len(reversible)))
                ledger.reverse(account_id, target, f"r-{n}", "reversed")
            elif n % 3 == 2:
                ledger.withdraw(account_id, amount, f"w-{n}")
                reversible.append(f"w-{n}")
            else:
                ledger.deposit(account_id, amount, f"d-{n}", f"posting {n}")
                reversible.append(f"d-{n}")
        except BusinessRuleError:
            # Withdrawals and reversals beyond the overdraft are refused; the history goes on.
            continue


def full_replay(store: EventStore, account_id: str) -> State:
    """The account folded from its first event, without any snapshot."""
    return CommandHandler(store, use_snapshots=False, cache_size=0).load(account_id)


def test_loading_through_snapshots_equals_a_full_replay(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str
) -> None:
    writer = make_ledger(snapshot_every=7)
    build_history(writer, account_id, postings=400)
    # One more event that no snapshot covers, so the load folds a tail after the snapshot.
    make_ledger(use_snapshots=False).deposit(account_id, "1.00", "tail")

    snapshot = state_from_snapshot(store.read_snapshot(account_id) or b"")
    loaded = CommandHandler(store, cache_size=0).load(account_id)
    replayed = full_replay(store, account_id)

    assert writer.handler.stats.snapshots_written >= 400 // 7
    assert snapshot is not None and 0 < snapshot.revision < replayed.revision
    assert loaded == replayed
    assert len(loaded.window) == len(replayed.window) > 300
    assert loaded.overdraft_limit == 8_000
    assert any(isinstance(s.event, PostingReversed) for s in store.read(account_id))


def test_a_state_loaded_through_a_snapshot_still_knows_old_transactions(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str
) -> None:
    writer = make_ledger(snapshot_every=5)
    writer.open_account(account_id, "Sam", "EUR")
    first = writer.deposit(account_id, "10.00", "t-old", "before the snapshot")
    for n in range(12):
        writer.deposit(account_id, "1.00", f"t-{n}")
    reader = make_ledger(cache_size=0)

    again = reader.deposit(account_id, "10.00", "t-old", "before the snapshot")
    with pytest.raises(TransactionConflictError):
        reader.deposit(account_id, "10.00", "t-old", "other content")
    reversed_ = reader.reverse(account_id, "t-old", "r-old")

    assert store.read_snapshot(account_id) is not None
    assert again.replayed and (again.revision, again.balance) == (first.revision, first.balance)
    assert again.commit_position == first.commit_position
    assert reversed_.balance == 1_200


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\xff\xfe not a snapshot",
        b"",
        b'{"snapshot_version": 1}',
        b"[1, 2, 3]",
        "truncated",
        "future version",
    ],
)
def test_a_corrupt_newest_snapshot_is_ignored(
    make_ledger: Callable[..., Ledger],
    store: EventStore,
    account_id: str,
    garbage: bytes | str,
) -> None:
    build_history(make_ledger(snapshot_every=5), account_id, postings=30)
    good = store.read_snapshot(account_id)
    assert good is not None
    if garbage == "truncated":
        garbage = good[: len(good) // 2]
    elif garbage == "future version":
        current = f'"snapshot_version":{SNAPSHOT_VERSION}'.encode()
        future = f'"snapshot_version":{SNAPSHOT_VERSION + 1}'.encode()
        garbage = good.replace(current, future, 1)
    assert isinstance(garbage, bytes) and garbage != good
    store.write_snapshot(account_id, garbage)

    loaded = CommandHandler(store, cache_size=0).load(account_id)

    assert store.read_snapshot(account_id) == garbage
    assert loaded == full_replay(store, account_id)


def test_a_snapshot_of_another_account_is_ignored(
    make_ledger: Callable[..., Ledger],
    store: EventStore,
    account_id: str,
) -> None:
    other = new_account_id()
    ledger = make_ledger(snapshot_every=0)
    build_history(ledger, account_id, postings=20, seed=1)
    build_history(ledger, other, postings=10, seed=2)
    foreign = state_to_snapshot(full_replay(store, other))
    store.write_snapshot(account_id, foreign)

    loaded = CommandHandler(store, cache_size=0).load(account_id)

    assert store.read_snapshot(account_id) == foreign
    assert loaded.account_id == account_id
    assert loaded == full_replay(store, account_id)


def full_window_history(account_id: str, postings: int) -> tuple[list[AccountEvent], State]:
    """Events and state of an account with `postings` postings, by the pure decider alone."""
    state = initial_state
    events: list[AccountEvent] = []

    def apply(command: OpenAccount | Deposit | Withdraw | Reverse) -> None:
        nonlocal state
        for event in decide(command, state):
            events.append(event)
            state = evolve(state, event)

    common: dict[str, Any] = {"account_id": account_id, "now": T0, "meta": META}
    apply(OpenAccount(owner="Wendy", currency="EUR", overdraft_limit="100.00", **common))
    for n in range(postings):
        if n % 97 == 96:
            apply(Reverse(transaction_id=f"r-{n}", reverses=f"t-{n - 1}", **common))
        elif n % 4 == 3:
            apply(Withdraw(amount="3.25", transaction_id=f"t-{n}", **common))
        else:
            apply(Deposit(amount=f"{n % 50 + 1}.07", transaction_id=f"t-{n}", **common))
    return events, state


def test_a_full_window_snapshot_fits_one_append_and_round_trips(
    raw: EventStoreDBClient, account_id: str
) -> None:
    # Of the esdbclient adapter alone: the size limit is the server's, the stream the adapter's.
    store = AccountEventStore(raw)
    events, state = full_window_history(account_id, WINDOW_SIZE + 50)
    data = state_to_snapshot(state)

    store.write_snapshot(account_id, data)

    assert len(state.window) == WINDOW_SIZE
    assert len(data) < MAX_APPEND_SIZE
    stored = raw.get_stream(snapshot_stream(account_id))
    assert [bytes(e.data) for e in stored] == [data]
    read_back = store.read_snapshot(account_id)
    assert read_back == data
    assert state_from_snapshot(read_back) == state

    # The same snapshot serves a load once the account's events are stored too.
    for start in range(0, len(events), 500):
        store.append(
            account_id, expected_revision=start - 1, events=events[start : start + 500], meta=META
        )
    loaded = CommandHandler(store, cache_size=0).load(account_id)
    assert loaded == state == full_replay(store, account_id)


def test_snapshot_streams_keep_the_newest_two_and_their_metadata_is_set_once(
    raw: EventStoreDBClient, account_id: str
) -> None:
    store = AccountEventStore(raw)
    snapshots = [f'{{"n":{n}}}'.encode() for n in range(5)]

    for data in snapshots:
        store.write_snapshot(account_id, data)

    stream = snapshot_stream(account_id)
    assert raw.get_stream_metadata(stream)[0] == {"$maxCount": 2}
    assert [bytes(e.data) for e in raw.get_stream(stream)] == snapshots[-2:]
    assert store.read_snapshot(account_id) == snapshots[-1]
    # One metadata write for five snapshots, and none from a second process that finds it set.
    again = AccountEventStore(raw)
    again.write_snapshot(account_id, b'{"n":5}')
    assert raw.get_stream_metadata(stream)[1] == 0
