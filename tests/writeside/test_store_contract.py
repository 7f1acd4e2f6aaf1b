"""The EventStore contract, kept alike by the in-memory store and the esdbclient adapter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from ledger.accounts.commands import CommandMeta
from ledger.accounts.events import AccountEvent, AccountOpened, MoneyDeposited
from ledger.audit import account_history
from ledger.store import EventStore, VersionConflict
from tests.writeside.stores import make_store as make_store

META = CommandMeta(correlation_id="corr-c", causation_id="cause-c", actor="test:contract")
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def opened(account_id: str) -> AccountOpened:
    return AccountOpened(
        account_id=account_id, owner="Cora", currency="EUR", overdraft_limit=0, occurred_at=NOW
    )


def deposited(account_id: str, n: int, amount: int = 100) -> MoneyDeposited:
    return MoneyDeposited(
        account_id=account_id,
        transaction_id=f"t{n}",
        amount=amount,
        currency="EUR",
        description="",
        balance_after=amount * n,
        occurred_at=NOW,
    )


def history(account_id: str, postings: int) -> list[AccountEvent]:
    return [opened(account_id), *(deposited(account_id, n) for n in range(1, postings + 1))]


def test_a_new_stream_is_appended_at_revision_minus_one_and_read_back(
    store: EventStore, account_id: str
) -> None:
    events = history(account_id, 2)

    position = store.append(account_id, expected_revision=-1, events=events, meta=META)

    stored = store.read(account_id)
    assert [s.event for s in stored] == events
    assert [s.revision for s in stored] == [0, 1, 2]
    assert stored[-1].commit_position == position


def test_events_read_back_with_their_metadata_and_the_stream_end(
    store: EventStore, account_id: str
) -> None:
    assert store.current_revision(account_id) == -1
    store.append(account_id, expected_revision=-1, events=history(account_id, 2), meta=META)

    entries = account_history(store, account_id)

    assert store.current_revision(account_id) == 2
    assert [(e.revision, e.transaction_id) for e in entries] == [(0, None), (1, "t1"), (2, "t2")]
    assert {(e.actor, e.correlation_id, e.causation_id) for e in entries} == {
        ("test:contract", "corr-c", "cause-c")
    }


def test_an_unknown_stream_reads_as_empty(store: EventStore, account_id: str) -> None:
    assert store.read(account_id) == []
    assert store.read(account_id, from_revision=3) == []
    assert store.read_one(account_id, revision=0) is None


def test_reads_start_at_a_revision_and_read_one_finds_one_event(
    store: EventStore, account_id: str
) -> None:
    events = history(account_id, 3)
    store.append(account_id, expected_revision=-1, events=events, meta=META)

    tail = store.read(account_id, from_revision=2)
    one = store.read_one(account_id, revision=1)

    assert [(s.revision, s.event) for s in tail] == [(2, events[2]), (3, events[3])]
    assert one is not None and (one.revision, one.event) == (1, events[1])
    assert one == store.read(account_id)[1]
    assert store.read_one(account_id, revision=4) is None
    assert store.read(account_id, from_revision=4) == []


def test_appending_at_the_revision_read_continues_the_stream(
    store: EventStore, account_id: str
) -> None:
    events = history(account_id, 2)
    store.append(account_id, expected_revision=-1, events=events[:1], meta=META)

    store.append(account_id, expected_revision=0, events=events[1:], meta=META)

    assert [s.event for s in store.read(account_id)] == events


@pytest.mark.parametrize("expected_revision", [-1, 0, 2, 5])
def test_appending_at_another_revision_is_a_version_conflict_and_writes_nothing(
    store: EventStore, account_id: str, expected_revision: int
) -> None:
    store.append(account_id, expected_revision=-1, events=history(account_id, 1), meta=META)
    before = store.read(account_id)

    with pytest.raises(VersionConflict):
        store.append(
            account_id,
            expected_revision=expected_revision,
            events=[deposited(account_id, 7, amount=999)],
            meta=META,
        )

    assert store.read(account_id) == before


def test_a_stream_that_does_not_exist_conflicts_with_any_revision_but_minus_one(
    store: EventStore, account_id: str
) -> None:
    with pytest.raises(VersionConflict):
        store.append(account_id, expected_revision=0, events=[opened(account_id)], meta=META)

    assert store.read(account_id) == []


def test_the_same_events_again_at_the_same_revision_are_written_once(
    store: EventStore, account_id: str
) -> None:
    events = history(account_id, 2)
    first = store.append(account_id, expected_revision=-1, events=events, meta=META)
    store.append(account_id, expected_revision=2, events=[deposited(account_id, 3)], meta=META)
    other_meta = META.model_copy(update={"correlation_id": "corr-other"})

    again = store.append(account_id, expected_revision=-1, events=events, meta=other_meta)

    assert again == first
    assert len(store.read(account_id)) == 4


@pytest.mark.parametrize(
    "retry",
    [
        pytest.param(lambda a: [opened(a), deposited(a, 1, amount=5)], id="other content"),
        pytest.param(lambda a: [*history(a, 2), deposited(a, 3)], id="more events"),
        pytest.param(lambda a: [deposited(a, 1)], id="shifted revision"),
    ],
)
def test_a_retry_that_is_not_the_same_events_at_the_same_revisions_conflicts(
    store: EventStore, account_id: str, retry: Callable[[str], list[AccountEvent]]
) -> None:
    store.append(account_id, expected_revision=-1, events=history(account_id, 2), meta=META)
    before = store.read(account_id)

    with pytest.raises(VersionConflict):
        store.append(account_id, expected_revision=-1, events=retry(account_id), meta=META)

    assert store.read(account_id) == before


def test_commit_positions_grow_across_streams_and_the_newest_is_the_store_s(
    store: EventStore, account_id: str
) -> None:
    other = account_id + "-other"
    first = store.append(account_id, expected_revision=-1, events=history(account_id, 1), meta=META)
    second = store.append(other, expected_revision=-1, events=history(other, 2), meta=META)
    more = [deposited(account_id, 2)]
    third = store.append(account_id, expected_revision=1, events=more, meta=META)

    positions = [s.commit_position for s in store.read(account_id)]
    others = [s.commit_position for s in store.read(other)]

    assert 0 < first < second < third
    assert positions == sorted(set(positions)) and positions[-1] == third
    assert others[-1] == second and first < others[0]
    assert store.commit_position() >= third


def test_snapshots_are_kept_per_account_and_the_newest_is_read(
    store: EventStore, account_id: str
) -> None:
    other = account_id + "-other"
    assert store.read_snapshot(account_id) is None

    store.write_snapshot(account_id, b'{"n": 1}')
    store.write_snapshot(account_id, b'{"n": 2}')
    store.write_snapshot(other, b'{"n": 3}')

    assert store.read_snapshot(account_id) == b'{"n": 2}'
    assert store.read_snapshot(other) == b'{"n": 3}'
    assert store.read(account_id) == []


def test_a_snapshot_is_no_event_of_the_account_stream(store: EventStore, account_id: str) -> None:
    store.append(account_id, expected_revision=-1, events=history(account_id, 1), meta=META)

    store.write_snapshot(account_id, b"{}")

    assert len(store.read(account_id)) == 2
    store.append(account_id, expected_revision=1, events=[deposited(account_id, 2)], meta=META)


def test_read_all_gives_every_account_event_in_all_order_from_a_position_on(
    store: EventStore, account_id: str
) -> None:
    other = account_id + "-other"
    store.append(account_id, expected_revision=-1, events=history(account_id, 1), meta=META)
    store.write_snapshot(account_id, b"{}")
    store.append(other, expected_revision=-1, events=history(other, 1), meta=META)
    last = store.append(
        account_id, expected_revision=1, events=[deposited(account_id, 2)], meta=META
    )
    mine = {account_id, other}

    read = [(a, s.revision, s.commit_position) for a, s in store.read_all() if a in mine]
    resumed = [(a, s.revision) for a, s in store.read_all(from_position=read[1][2]) if a in mine]

    assert [(a, r) for a, r, _ in read] == [
        (account_id, 0),
        (account_id, 1),
        (other, 0),
        (other, 1),
        (account_id, 2),
    ]
    assert [p for _, _, p in read] == sorted(p for _, _, p in read) and read[-1][2] == last
    assert resumed == [(account_id, 1), (other, 0), (other, 1), (account_id, 2)]
