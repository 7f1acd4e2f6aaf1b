"""The per-projection rebuild's pool of applier processes, driven directly: what each child is
sent (transfers' events only to the projection that follows them, every checkpoint moving
all the same); and how the coordinator rests between full batches (a fake clock)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ledger.transfers.events import TransferRequested
from projections.applier import PROJECTIONS
from projections.checkpoints import ensure_checkpoints, read_checkpoints
from projections.fanout import ApplierPool, Pace
from projections.feed import SHADOW
from projections.lease import Lease
from tests.support.clock import T0
from tests.support.feed import Feed


def requested(transfer_id: str) -> TransferRequested:
    """The first event of a transfer's stream."""
    return TransferRequested(
        transfer_id=transfer_id,
        occurred_at=T0,
        from_account="acc-a",
        to_account="acc-b",
        amount=400,
        currency="EUR",
        description="rent",
    )


@pytest.fixture
def pool_of(database_url: str, db: psycopg.Connection[Any]) -> Iterator[Any]:
    """Start a pool for some projections' shadow tables, under a lease taken on their slots."""
    started: list[tuple[ApplierPool, Lease]] = []

    def start(names: Sequence[str]) -> tuple[ApplierPool, Lease]:
        for name in names:
            for table in PROJECTIONS[name].tables:
                db.execute(
                    sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                        sql.Identifier(table + SHADOW), sql.Identifier(table)
                    )
                )
        ensure_checkpoints(db, [n + SHADOW for n in names])
        lease = Lease(database_url, [n + SHADOW for n in names])
        lease.open()
        assert lease.try_acquire()
        pool = ApplierPool(database_url, names, batch_size=1000)
        started.append((pool, lease))
        return pool, lease

    try:
        yield start
    finally:
        for pool, lease in started:
            pool.close()
            lease.release()


def rows(db: psycopg.Connection[Any], table: str) -> list[tuple[Any, ...]]:
    return db.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table))).fetchall()


def test_a_batch_of_transfer_events_moves_every_checkpoint_and_reaches_the_transfers_child(
    pool_of: Any, db: psycopg.Connection[Any]
) -> None:
    # given an applier for balances (which ignores transfers' streams) and one for transfers
    pool, lease = pool_of(["balances", "transfers"])

    # when a batch holding only a transfer stream's event is sent and committed
    feed = Feed()
    batch = feed.transfer(requested("tr-1"))
    pool.send(batch, batch[-1].position, lease)
    pool.drain()

    # then both checkpoints moved to its position, and only the transfers table got a row
    assert read_checkpoints(db, ["balances" + SHADOW, "transfers" + SHADOW]) == {
        "balances" + SHADOW: batch[-1].position,
        "transfers" + SHADOW: batch[-1].position,
    }
    assert [r[0] for r in rows(db, "transfers" + SHADOW)] == ["tr-1"]
    assert rows(db, "account_balances" + SHADOW) == []


def test_a_batch_mixing_both_kinds_gives_each_child_the_events_its_projection_reads(
    pool_of: Any, db: psycopg.Connection[Any]
) -> None:
    # given the same two appliers
    pool, lease = pool_of(["balances", "transfers"])

    # when one batch holds an account's events with a transfer's between them
    feed = Feed()
    feed.open("acc-a")
    feed.transfer(requested("tr-2"))
    feed.deposit("acc-a", "7.00", "t-1")
    pool.send(feed.events, feed.events[-1].position, lease)
    pool.drain()

    # then balances folded both account events (no revision gap) and transfers has its row
    balance = db.execute(
        "SELECT balance, last_revision FROM account_balances__next WHERE account_id = 'acc-a'"
    ).fetchone()
    assert balance == (700, 1)
    assert [r[0] for r in rows(db, "transfers" + SHADOW)] == ["tr-2"]
    slots = read_checkpoints(db, ["balances" + SHADOW, "transfers" + SHADOW])
    assert set(slots.values()) == {feed.events[-1].position}


class FakeTime:
    """A clock that moves only when told, and a sleep that records instead of waiting."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_the_coordinator_rests_most_of_a_batch_s_reading_time_after_each_full_batch() -> None:
    # given a pace for batches of 1000, with the reader taking 0.5 s a batch
    time = FakeTime()
    pace = Pace(1000, clock=time.clock, sleep=time.sleep)

    # when full batches are handed over as the reader delivers them
    pace.batch(1000)
    for _ in range(3):
        time.now += 0.5 - (time.slept[-1] if time.slept else 0.0)  # the reader's pace
        pace.batch(1000)

    # then no rest after the first (nothing measured yet), then 80% of 0.5 s each time
    assert time.slept == [0.4, 0.4, 0.4]


def measured(interval: float) -> tuple[FakeTime, Pace]:
    """A pace for batches of 1000 that has seen two full ones `interval` seconds apart."""
    time = FakeTime()
    pace = Pace(1000, clock=time.clock, sleep=time.sleep)
    pace.batch(1000)
    time.now += interval
    pace.batch(1000)
    return time, pace


def test_a_short_batch_means_the_head_is_reached_and_no_rest() -> None:
    # given a pace that has measured full batches 0.5 s apart (and rested after the second)
    time, pace = measured(0.5)

    # when a short batch comes (the reader is at the head), then a full one
    time.now += 0.1
    pace.batch(10)
    time.now += 0.5
    pace.batch(1000)

    # then neither rests: a full batch after a short one has no interval to go by
    assert time.slept == [0.4]


def test_a_rest_longer_than_the_reader_needs_shrinks_back() -> None:
    # given a pace that measured a slow reader (2 s a batch)
    time, pace = measured(2.0)

    # when the reader gets fast: the batch is ready the moment the rest ends
    for _ in range(20):
        pace.batch(1000)

    # then the rests shrink at once (the first is capped at a second)
    assert all(b < a for a, b in zip(time.slept, time.slept[1:], strict=False))
    assert time.slept[0] == Pace.LONGEST and time.slept[-1] < 0.02
