"""The transfers read model follows the transfer streams: every transfer is listed with the state
its stream and its legs give it, and verify catches a row that disagrees with a fresh fold."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg

from ledger.accounts.commands import TransferStep
from ledger.accounts.events import Posting
from ledger.transfers.events import (
    TransferCompleted,
    TransferCredited,
    TransferDebited,
    TransferRefunded,
    TransferRejected,
    TransferRequested,
)
from projections.conservation import money_in_flight
from projections.queries import list_transfers
from projections.transfers import leg_facts, merge, stream_facts
from projections.verify import verify
from tests.support.clock import T0
from tests.support.feed import Feed, project, project_each_twice
from tests.support.ids import new_account_id

DEBIT, CREDIT, REFUND = TransferStep.DEBIT, TransferStep.CREDIT, TransferStep.REFUND


def requested(tid: str, a: str, b: str, amount: int) -> TransferRequested:
    return TransferRequested(
        transfer_id=tid,
        occurred_at=T0,
        from_account=a,
        to_account=b,
        amount=amount,
        currency="EUR",
        description="",
    )


def scenario() -> tuple[Feed, str, str]:
    """a: 100.00. r1 rejected (500.00, nothing moved); q1 only requested; c1 completed (30.00);
    s1 rejected while a racing process debited it, then that debit refunded (10.00)."""
    feed, a, b = Feed(), new_account_id(), new_account_id()
    feed.open(a)
    feed.open(b)
    feed.deposit(a, "100.00", "d1")
    feed.transfer(requested("r1", a, b, 50000))
    feed.transfer(TransferRejected(transfer_id="r1", occurred_at=T0, reason="insufficient funds"))
    feed.transfer(requested("q1", a, b, 700))
    feed.transfer(requested("c1", a, b, 3000))
    feed.leg(a, DEBIT, "c1", b, 3000)
    feed.transfer(
        TransferDebited(transfer_id="c1", occurred_at=T0, from_balance=7000, posting_position=1)
    )
    feed.leg(b, CREDIT, "c1", a, 3000)
    feed.transfer(
        TransferCredited(transfer_id="c1", occurred_at=T0, posting_position=2),
        TransferCompleted(transfer_id="c1", occurred_at=T0),
    )
    feed.transfer(requested("s1", a, b, 1000))
    feed.leg(a, DEBIT, "s1", b, 1000)
    feed.transfer(TransferRejected(transfer_id="s1", occurred_at=T0, reason="raced"))
    feed.leg(a, REFUND, "s1", b, 1000)
    feed.transfer(TransferRefunded(transfer_id="s1", occurred_at=T0, posting_position=3))
    return feed, a, b


def states(db: psycopg.Connection[Any]) -> dict[str, tuple[Any, ...]]:
    return {
        r.transfer_id: (r.state, r.amount, r.debited_at is not None) for r in list_transfers(db)
    }


def test_every_transfer_is_listed_with_the_state_its_stream_gives_it(
    db: psycopg.Connection,
) -> None:
    feed, a, _ = scenario()

    project_each_twice(db, feed.events)

    assert states(db) == {
        "r1": ("rejected", 50000, False),
        "q1": ("requested", 700, False),
        "c1": ("completed", 3000, True),
        "s1": ("rejected", 1000, True),  # refunded after the rejection: not "failed"
    }
    reason = db.execute("SELECT reason FROM transfers WHERE transfer_id = 'r1'").fetchone()
    assert reason == ("insufficient funds",)
    assert [r.transfer_id for r in list_transfers(db, account=a, state="rejected")] == [
        "r1",
        "s1",
    ]
    assert verify(db, feed.fold, stuck_before=T0) == []
    [money] = money_in_flight(db).values()
    assert money.in_transit == 0 and money.balances == money.external


def test_a_debit_that_raced_a_rejection_is_money_in_transit_until_refunded(
    db: psycopg.Connection,
) -> None:
    feed, a, b = scenario()
    feed.transfer(requested("s2", a, b, 500))
    feed.leg(a, DEBIT, "s2", b, 500)
    feed.transfer(TransferRejected(transfer_id="s2", occurred_at=T0, reason="raced"))

    project(db, feed.events)

    assert states(db)["s2"] == ("rejected", 500, True)
    [money] = money_in_flight(db).values()
    assert money.in_transit == 500 and money.balances + 500 == money.external
    assert verify(db, feed.fold) == []


def test_verify_catches_a_rejected_transfer_shown_as_failed(db: psycopg.Connection) -> None:
    feed, _, _ = scenario()
    project(db, feed.events)
    db.execute("UPDATE transfers SET state = 'failed' WHERE transfer_id = 's1'")

    [violation] = verify(db, feed.fold)

    assert (violation.table, violation.check) == ("transfers", "wrong value")
    assert "transfer s1: state 'failed', the write model has 'rejected'" in violation.detail


def test_verify_catches_a_missing_rejected_transfer_and_a_lost_reason(
    db: psycopg.Connection,
) -> None:
    feed, _, _ = scenario()
    project(db, feed.events)
    db.execute("DELETE FROM transfers WHERE transfer_id = 'q1'")
    db.execute("UPDATE transfers SET reason = NULL WHERE transfer_id = 'r1'")

    found = sorted((v.check, v.detail.split(":")[0]) for v in verify(db, feed.fold))

    assert found == [
        ("missing row", "no row for transfer q1, whose events in the store make it requested"),
        ("wrong value", "transfer r1"),
    ]


def test_a_final_state_is_never_taken_back_whatever_order_the_facts_arrive_in() -> None:
    a, b = "acc-a", "acc-b"
    feed = Feed()
    feed.open(a)
    feed.open(b)
    feed.deposit(a, "10.00", "d1")
    legs = [*feed.leg(a, DEBIT, "s1", b, 100), *feed.leg(a, REFUND, "s1", b, 100)]
    facts = [
        stream_facts(requested("s1", a, b, 100)),
        stream_facts(TransferRejected(transfer_id="s1", occurred_at=T0, reason="raced")),
        stream_facts(TransferRefunded(transfer_id="s1", occurred_at=T0, posting_position=9)),
    ]
    for e in legs:
        posting = feed.decoded[e.position]
        assert isinstance(posting, Posting)
        leg = leg_facts(a, posting)
        assert leg is not None
        facts.append(leg)

    shown = set()
    for order in itertools.permutations(facts):
        row: dict[str, Any] | None = None
        for f in order:
            row = merge(row, f)
        assert row is not None
        shown.add(tuple(sorted(row.items())))

    [only] = shown
    assert dict(only)["state"] == "rejected" and dict(only)["reason"] == "raced"
