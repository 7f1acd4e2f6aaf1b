"""Transfer legs in the read models, and verify's money-in-flight checks against the corruption
each exists for."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from ledger.accounts.commands import TransferStep
from ledger.accounts.events import MoneyDeposited, PostingKind
from ledger.errors import ConcurrencyConflictError, InsufficientFundsError
from ledger.eventstore import AccountEventStore
from ledger.service import Ledger
from ledger.writemodel import write_model_fold
from projections.conservation import money_in_flight
from projections.verify import verify
from tests.support.clock import T0
from tests.support.feed import Feed, project, project_each_twice
from tests.support.ids import new_account_id
from tests.support.runners import catch_up

DEBIT, CREDIT, REFUND = TransferStep.DEBIT, TransferStep.CREDIT, TransferStep.REFUND


def transfers(db: psycopg.Connection[Any]) -> dict[str, tuple[Any, ...]]:
    rows = db.execute(
        "SELECT transfer_id, from_account, to_account, amount, currency, state,"
        " debited_at IS NOT NULL, credited_at IS NOT NULL, refunded_at IS NOT NULL FROM transfers"
    ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def scenario() -> tuple[Feed, str, str]:
    """a: 100.00 deposited; x1 completed (30.00 to b); x2 debited (20.00, in transit);
    x3 failed (10.00, refunded)."""
    feed, a, b = Feed(), new_account_id(), new_account_id()
    feed.open(a)
    feed.open(b)
    feed.deposit(a, "100.00", "d1")
    feed.leg(a, DEBIT, "x1", b, 3000)
    feed.leg(b, CREDIT, "x1", a, 3000)
    feed.leg(a, DEBIT, "x2", b, 2000)
    feed.leg(a, DEBIT, "x3", b, 1000)
    feed.leg(a, REFUND, "x3", b, 1000)
    return feed, a, b


def test_legs_give_statement_lines_daily_totals_and_transfer_rows_once(
    db: psycopg.Connection,
) -> None:
    feed, a, b = scenario()

    project_each_twice(db, feed.events)

    lines = db.execute(
        "SELECT transaction_id, kind, amount, transfer_id, counterparty FROM account_statements"
        " WHERE account_id = %s ORDER BY revision",
        (a,),
    ).fetchall()
    assert lines == [
        ("d1", "deposit", 10000, None, None),
        ("x1/debit", "transfer_out", -3000, "x1", b),
        ("x2/debit", "transfer_out", -2000, "x2", b),
        ("x3/debit", "transfer_out", -1000, "x3", b),
        ("x3/refund", "transfer_refund", 1000, "x3", b),
    ]
    totals = db.execute(
        "SELECT deposited, withdrawn, transferred_out, transferred_in FROM daily_totals"
    ).fetchall()
    assert totals == [(10000, 0, 6000, 4000)]
    assert transfers(db) == {
        "x1": (a, b, 3000, "EUR", "completed", True, True, False),
        "x2": (a, b, 2000, "EUR", "debited", True, False, False),
        "x3": (a, b, 1000, "EUR", "failed", True, False, True),
    }
    assert verify(db, feed.fold) == []


def test_verify_reports_money_in_transit_for_too_long(db: psycopg.Connection) -> None:
    feed, _, _ = scenario()
    project(db, feed.events)

    assert verify(db, feed.fold, stuck_before=T0) == []
    [stuck] = verify(db, feed.fold, stuck_before=T0 + dt.timedelta(minutes=5))

    assert (stuck.table, stuck.check) == ("transfers", "stuck")
    assert "transfer x2 of 20.00 EUR" in stuck.detail


def test_verify_catches_a_transfer_row_with_the_wrong_state(db: psycopg.Connection) -> None:
    feed, _, _ = scenario()
    project(db, feed.events)
    db.execute("UPDATE transfers SET state = 'completed' WHERE transfer_id = 'x2'")

    [violation] = verify(db, feed.fold)

    assert (violation.table, violation.check) == ("transfers", "wrong value")
    assert "state 'completed', the write model has 'debited'" in violation.detail


def test_verify_catches_a_transfer_row_whose_money_arrived_without_a_credit(
    db: psycopg.Connection,
) -> None:
    feed, _, _ = scenario()
    project(db, feed.events)
    db.execute("UPDATE transfers SET credited_at = updated_at WHERE transfer_id = 'x2'")

    found = {(v.table, v.check) for v in verify(db, feed.fold)}

    # The row is wrong, and with it 20.00 in transit vanished from the money in flight.
    assert found == {("transfers", "wrong value"), ("money", "wrong value")}


def test_verify_catches_a_missing_transfer_row(db: psycopg.Connection) -> None:
    feed, _, _ = scenario()
    project(db, feed.events)
    db.execute("DELETE FROM transfers WHERE transfer_id = 'x1'")

    [violation] = verify(db, feed.fold)

    assert (violation.table, violation.check) == ("transfers", "missing row")


def test_verify_catches_money_created_by_a_balance_the_other_checks_cannot_see(
    db: psycopg.Connection,
) -> None:
    """Balances, totals and transfers each agree with a write model that double-credited: only
    the legs of one transfer and conservation see it."""
    feed, a, b = scenario()
    feed.append(
        b,
        MoneyDeposited(
            account_id=b,
            transaction_id="x1/credit-again",
            amount=3000,
            currency="EUR",
            description="",
            balance_after=6000,
            occurred_at=T0,
            kind=PostingKind.TRANSFER_IN,
            transfer_id="x1",
            counterparty=a,
        ),
    )
    project(db, feed.events)

    found = verify(db, feed.fold)

    assert [(v.table, v.check) for v in found] == [
        ("transfers", "wrong value"),
        ("money", "wrong value"),
        ("money", "wrong value"),
    ]
    assert "money was created or lost" in found[0].detail
    assert "off by 30.00" in found[1].detail


def test_verify_catches_in_transit_money_the_daily_totals_disagree_with(
    db: psycopg.Connection,
) -> None:
    feed, _, _ = scenario()
    project(db, feed.events)
    db.execute("UPDATE daily_totals SET transferred_in = transferred_in + 2000")

    found = {(v.table, v.check) for v in verify(db, feed.fold)}

    assert ("money", "wrong value") in found and ("daily_totals", "wrong value") in found


def test_conservation_waits_for_the_read_models_to_stand_at_one_position(
    db: psycopg.Connection,
) -> None:
    feed, _, _ = scenario()
    project(db, feed.events)
    db.execute(
        "UPDATE projection_checkpoints SET position = position - 1 WHERE projection = 'transfers'"
    )
    db.execute("UPDATE transfers SET credited_at = updated_at WHERE transfer_id = 'x2'")

    found = {(v.table, v.check) for v in verify(db, feed.fold)}

    assert ("money", "wrong value") not in found


def test_concurrent_transfers_among_hot_accounts_leave_money_conserved_in_the_read_models(
    servers: Callable[..., Any],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection,
) -> None:
    """Four clients transfer among three hot accounts, with deposits and withdrawals between;
    then verify — which checks money in flight — finds every read model sound."""
    uri = servers().uri
    ledgers = [make_ledger(uri) for _ in range(4)]
    hot = [new_account_id("hot") for _ in range(3)]
    for account in hot:
        ledgers[0].open_account(account, "Hot", "EUR", "20")
        ledgers[0].deposit(account, "50", "seed-" + account)
    errors: list[BaseException] = []

    def command(n: int, i: int, ledger: Ledger) -> None:
        source, target = hot[(n + i) % 3], hot[(n + 2 * i + 1) % 3]
        if i % 6 == 0:
            ledger.deposit(source, "4", f"d-{n}-{i}-{source}")
        elif i % 6 == 3:
            ledger.withdraw(source, "6", f"w-{n}-{i}-{source}")
        elif source != target:
            ledger.transfer(source, target, "9", f"x-{n}-{i}-{hot[0]}")

    def client(n: int, ledger: Ledger) -> None:
        for i in range(25):
            # A client that runs out of conflict retries sends the same command again, as the
            # error tells it to: the same transaction (or transfer) id, so nothing is doubled.
            for attempt in range(5):
                try:
                    command(n, i, ledger)
                except InsufficientFundsError:
                    pass
                except ConcurrencyConflictError as exc:
                    if attempt < 4:
                        continue
                    errors.append(exc)
                except BaseException as exc:
                    errors.append(exc)
                break

    threads = [threading.Thread(target=client, args=(n, x)) for n, x in enumerate(ledgers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    catch_up(database_url, uri)

    assert errors == []
    assert db.execute("SELECT count(*) FROM transfers WHERE state = 'completed'").fetchone()[0] > 0
    assert verify(db, write_model_fold(make_store(uri)), stuck_before=T0) == []
    [money] = money_in_flight(db).values()
    assert (money.in_transit, money.balances) == (0, money.external)
