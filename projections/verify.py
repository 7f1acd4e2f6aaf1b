"""Verify the read models against the write model at one point: each table, as of its checkpoint,
compared both ways with the books folded up to that same $all position (later events are lag)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from ledger.accounts.books import Books
from ledger.accounts.daily import DayTotals
from ledger.accounts.events import Posting, PostingReversed
from ledger.currency import CURRENCY_EXPONENTS, format_amount
from projections.applier import PROJECTIONS
from projections.checkpoints import read_checkpoints
from projections.conservation import money_in_flight, stuck_transfers
from projections.names import PROJECTION_NAMES
from projections.statement_view import reversal_links
from projections.transfers import complete, facts_of, fold_rows

# The write model's books folded up to a $all position (ledger.writemodel.write_model_fold).
WriteModelFold = Callable[[int], Books]

WRONG, MISSING, EXTRA = "wrong value", "missing row", "extra row"
# Of daily_totals, in the order DayTotals has them.
COLUMNS = ("deposited", "withdrawn", "reversed", "count", "transferred_out", "transferred_in")
SHOWN = 3  # differences of one account spelled out in a violation; the rest are counted


@dataclass(frozen=True)
class Violation:
    """One row (or set of rows) of a read model that the write model does not agree with."""

    table: str
    check: str  # wrong value, missing row or extra row
    account_id: str | None
    day: str | None  # "EUR 2026-11-26" for a daily total
    detail: str

    def __str__(self) -> str:
        subject = f"account {self.account_id}" if self.account_id is not None else self.day
        return f"{self.table}: {self.check} for {subject}: {self.detail}"


@dataclass(frozen=True)
class Verification:
    """What verify found: violations, the positions checked, and the events after them."""

    violations: list[Violation]
    checkpoints: dict[str, int]
    lag_events: int

    @property
    def ok(self) -> bool:
        """No violation (lag is not one)."""
        return not self.violations


def money(minor: int, currency: str | None) -> str:
    """Minor units as money ("-52.00 EUR"); minor units when the currency is unknown."""
    if currency is not None and currency in CURRENCY_EXPONENTS:
        return f"{format_amount(minor, currency)} {currency}"
    return f"{minor} minor units (currency unknown)"


@contextmanager
def _one_snapshot(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Every query inside reads one snapshot of the database (or the caller's transaction)."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        yield
        return
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def check(
    conn: psycopg.Connection[Any],
    fold: WriteModelFold,
    *,
    suffix: str = "",
    projections: Sequence[str] = PROJECTION_NAMES,
    since: int | None = None,
    stuck_before: dt.datetime | None = None,
) -> Verification:
    """Compare each projection's tables (named with `suffix`) at its checkpoint with the books
    at that position, both ways. `since` limits accounts to those that moved after it.

    Then money in flight: per currency, balances + in transit = deposits - withdrawals, and
    (with `stuck_before`) every transfer in transit since before that instant is reported."""
    found: list[Violation] = []
    lag: int | None = None
    with _one_snapshot(conn):
        slots = read_checkpoints(conn, [name + suffix for name in projections])
        for position in sorted(set(slots.values())):
            books = fold(position)
            lag = books.later_events if lag is None else lag
            for name in projections:
                if slots[name + suffix] == position:
                    found += _COMPARE[name](conn, books, name_table(name, suffix), since)
        if since is None:  # a sum over every account: no part of an incremental check
            found += _money_in_flight(conn, slots, suffix, stuck_before)
    return Verification(found, slots, lag or 0)


_IN_FLIGHT = ("balances", "daily_totals", "transfers")


def _money_in_flight(
    conn: psycopg.Connection[Any],
    slots: dict[str, int],
    suffix: str,
    stuck_before: dt.datetime | None,
) -> list[Violation]:
    """Conservation per currency, checked when the three read models it adds up stand at one
    position (otherwise a lag between them would look like money created or lost)."""
    if any(name + suffix not in slots for name in _IN_FLIGHT):
        return []
    found = []
    if len({slots[name + suffix] for name in _IN_FLIGHT}) == 1:
        for c, m in money_in_flight(conn, suffix).items():
            if m.balances + m.in_transit != m.external:
                found.append(
                    Violation(
                        "money",
                        WRONG,
                        None,
                        c,
                        f"balances {money(m.balances, c)} + in transit {money(m.in_transit, c)} "
                        f"!= deposits - withdrawals {money(m.external, c)}: off by "
                        f"{money(m.balances + m.in_transit - m.external, c)}",
                    )
                )
            if m.in_transit != m.legs_in_transit:
                found.append(
                    Violation(
                        "money",
                        WRONG,
                        None,
                        c,
                        f"transfers in transit {money(m.in_transit, c)}, but the daily totals "
                        f"of their legs leave {money(m.legs_in_transit, c)} in transit",
                    )
                )
    if stuck_before is not None:
        for tid, src, dst, amount, c, at in stuck_transfers(conn, stuck_before, suffix):
            found.append(
                Violation(
                    "transfers",
                    "stuck",
                    src,
                    None,
                    f"transfer {tid} of {money(amount, c)} to {dst} has been in transit "
                    f"since {at.isoformat()}: is the runner (its process manager) running?",
                )
            )
    return found


def verify(
    conn: psycopg.Connection[Any],
    fold: WriteModelFold,
    *,
    suffix: str = "",
    projections: Sequence[str] = PROJECTION_NAMES,
    since: int | None = None,
    stuck_before: dt.datetime | None = None,
) -> list[Violation]:
    """The violations `check` finds; an empty list means the read models are sound."""
    found = check(
        conn, fold, suffix=suffix, projections=projections, since=since, stuck_before=stuck_before
    )
    return found.violations


def name_table(projection: str, suffix: str) -> str:
    """The one table of a projection, live or a rebuild's shadow."""
    (table,) = PROJECTIONS[projection].tables
    return table + suffix


def _accounts(
    conn: psycopg.Connection[Any], books: Books, table: str, column: str, since: int | None
) -> list[str] | None:
    """Every account (None), or those that moved after `since` on either side."""
    if since is None:
        return None
    moved = books.moved_since(since)
    moved.update(
        r[0]
        for r in conn.execute(
            sql.SQL("SELECT DISTINCT account_id FROM {} WHERE {} > %s").format(
                sql.Identifier(table), sql.Identifier(column)
            ),
            (since,),
        )
    )
    return sorted(moved)


def _rows(conn: psycopg.Connection[Any], query: str, table: str, only: list[str] | None) -> Any:
    where = " WHERE account_id = ANY(%(only)s)" if only is not None else ""
    return conn.execute(
        sql.SQL(query + where + " ORDER BY 1, 2").format(sql.Identifier(table)), {"only": only}
    ).fetchall()


def _differs(what: str, got: Any, want: Any, currency: str | None = None) -> str | None:
    if got == want:
        return None
    if currency is None or not isinstance(got, int) or not isinstance(want, int):
        return f"{what} {got!r}, the write model has {want!r}"
    return (
        f"{what} {money(got, currency)}, the write model has {money(want, currency)}: "
        f"off by {money(got - want, currency)}"
    )


def _compare_balances(
    conn: psycopg.Connection[Any], books: Books, table: str, since: int | None
) -> list[Violation]:
    only = _accounts(conn, books, table, "last_position", since)
    expected = {a: s for a, s in books.accounts.items() if only is None or a in only}
    found = []
    for account_id, owner, currency, balance, limit, status, revision in _rows(
        conn,
        "SELECT account_id, owner, currency, balance, overdraft_limit, status, last_revision"
        " FROM {}",
        table,
        only,
    ):
        state = expected.pop(account_id, None)
        if state is None:
            found.append(
                Violation(
                    table,
                    EXTRA,
                    account_id,
                    None,
                    f"balance {money(balance, currency)}, but the store has no event of the "
                    f"account up to position {books.position}",
                )
            )
            continue
        diffs = [
            _differs("balance", balance, state.balance, state.currency),
            _differs("currency", currency, state.currency),
            _differs("overdraft limit", limit, state.overdraft_limit, state.currency),
            _differs("status", status, str(state.status)),
            _differs("owner", owner, state.owner),
            _differs("last revision", revision, state.revision),
        ]
        if any(diffs):
            found.append(Violation(table, WRONG, account_id, None, _joined(diffs)))
    for account_id, state in expected.items():
        found.append(
            Violation(
                table,
                MISSING,
                account_id,
                None,
                f"no row, but the store's stream folds to {money(state.balance, state.currency)}"
                f" (revision {state.revision}) at position {books.position}",
            )
        )
    return found


def _compare_statements(
    conn: psycopg.Connection[Any], books: Books, table: str, since: int | None
) -> list[Violation]:
    only = _accounts(conn, books, table, "position", since)
    projected: dict[str, dict[int, tuple[Any, ...]]] = {}
    for account_id, revision, *row in _rows(
        conn,
        "SELECT account_id, revision, kind, transaction_id, amount, balance_after, reverses,"
        " reversed_by FROM {}",
        table,
        only,
    ):
        projected.setdefault(account_id, {})[revision] = tuple(row)
    expected = {a: p for a, p in books.postings.items() if only is None or a in only}
    found = []
    for account_id in sorted(set(projected) | set(expected)):
        rows, postings = projected.get(account_id, {}), expected.get(account_id, {})
        currency = books.accounts[account_id].currency if account_id in books.accounts else None
        extra = [r for r in rows if r not in postings]
        missing = [r for r in postings if r not in rows]
        links = reversal_links(
            (r, p.transaction_id, p.reverses if isinstance(p, PostingReversed) else None)
            for r, p in sorted(postings.items())
        )
        wrong = [
            d
            for r in sorted(set(rows) & set(postings))
            if (d := _posting_differs(r, rows[r], postings[r], links.get(r), currency))
        ]
        if wrong:
            found.append(Violation(table, WRONG, account_id, None, _counted(wrong, "rows")))
        if missing:
            found.append(
                Violation(
                    table,
                    MISSING,
                    account_id,
                    None,
                    _counted(
                        [f"revision {r} ({money(postings[r].amount, currency)})" for r in missing],
                        "rows",
                    )
                    + f": postings in the store up to position {books.position}, no row",
                )
            )
        if extra:
            found.append(
                Violation(
                    table,
                    EXTRA,
                    account_id,
                    None,
                    _counted(
                        [f"revision {r} ({money(rows[r][2], currency)})" for r in extra], "rows"
                    )
                    + f": rows with no posting in the store up to position {books.position}",
                )
            )
    return found


def _posting_differs(
    revision: int,
    row: tuple[Any, ...],
    posting: Posting,
    reversed_by: str | None,
    currency: str | None,
) -> str | None:
    kind, transaction_id, amount, after, reverses, row_reversed_by = row
    diffs = [
        _differs("amount", amount, posting.amount, currency),
        _differs("balance after", after, posting.balance_after, currency),
        _differs("kind", kind, str(getattr(posting, "kind", ""))),
        _differs("transaction", transaction_id, posting.transaction_id),
        _differs("reverses", reverses, getattr(posting, "reverses", None)),
        _differs("reversed by", row_reversed_by, reversed_by),
    ]
    return f"revision {revision}: {_joined(diffs)}" if any(diffs) else None


def _compare_daily_totals(
    conn: psycopg.Connection[Any], books: Books, table: str, since: int | None
) -> list[Violation]:
    expected = dict(books.daily)
    found = []
    for currency, day, *totals in conn.execute(
        sql.SQL(
            "SELECT currency, day, deposited, withdrawn, reversed, count, transferred_out,"
            " transferred_in FROM {} ORDER BY 1, 2"
        ).format(sql.Identifier(table))
    ):
        got, key = DayTotals(*map(int, totals)), f"{currency} {day.isoformat()}"
        want = expected.pop((currency, day), None)
        if want is None:
            found.append(
                Violation(
                    table,
                    EXTRA,
                    None,
                    key,
                    f"deposited {money(got.deposited, currency)} in {got.count} postings, but the "
                    f"store has no posting that day up to position {books.position}",
                )
            )
            continue
        diffs = [
            _differs(column, value, getattr(want, column), None if column == "count" else currency)
            for column, value in zip(COLUMNS, got.columns(), strict=True)
        ]
        if any(diffs):
            found.append(Violation(table, WRONG, None, key, _joined(diffs)))
    for (currency, day), want in sorted(expected.items()):
        found.append(
            Violation(
                table,
                MISSING,
                None,
                f"{currency} {day.isoformat()}",
                f"no row, but the store has {want.count} postings that day (deposited "
                f"{money(want.deposited, currency)}) up to position {books.position}",
            )
        )
    return found


def _joined(parts: Sequence[str | None]) -> str:
    return "; ".join(p for p in parts if p)


def _counted(items: Sequence[str], what: str) -> str:
    more = f" (and {len(items) - SHOWN} more {what})" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def expected_transfers(books: Books) -> tuple[dict[str, dict[str, Any]], list[Violation]]:
    """The transfers rows the books' transfer streams and legs imply, and the legs that cannot
    be one transfer's (a step posted twice, a credit and a refund, a leg without a debit)."""
    legs: dict[str, list[tuple[str, Posting]]] = {}
    for account_id, postings in books.postings.items():
        for posting in postings.values():
            if posting.transfer_id is not None:
                legs.setdefault(posting.transfer_id, []).append((account_id, posting))
    found = []
    for tid, posted in legs.items():
        kinds = sorted(str(getattr(p, "kind", "")) for _, p in posted)
        amounts = {abs(p.amount) for _, p in posted}
        odd = len(set(kinds)) != len(kinds) or "transfer_out" not in kinds
        if odd or len(kinds) > 2 or len(amounts) > 1:
            account = posted[0][0]
            found.append(
                Violation(
                    "transfers",
                    WRONG,
                    account,
                    None,
                    f"transfer {tid} has the legs {', '.join(kinds)} of amounts "
                    f"{sorted(amounts)}: money was created or lost",
                )
            )
    # The projection's own merge, over the same facts: each transfer's events, then its legs.
    streams = ((tid, e) for tid, events in books.transfers.items() for e in events)
    posted_legs = (leg for posted in legs.values() for leg in posted)
    rows = fold_rows(facts_of((("", e) for _, e in streams)))
    rows = fold_rows(facts_of(posted_legs), rows)
    return {tid: row for tid, row in rows.items() if complete(row)}, found


def _compare_transfers(
    conn: psycopg.Connection[Any], books: Books, table: str, since: int | None
) -> list[Violation]:
    expected, found = expected_transfers(books)
    fields = ("from_account", "to_account", "amount", "currency", "state", "reason", "legs")
    got = {
        tid: dict(zip(fields, rest, strict=True))
        for tid, *rest in conn.execute(
            sql.SQL(
                "SELECT transfer_id, from_account, to_account, amount, currency, state, reason,"
                " concat_ws(' ', CASE WHEN debited_at IS NOT NULL THEN 'debit' END,"
                " CASE WHEN credited_at IS NOT NULL THEN 'credit' END,"
                " CASE WHEN refunded_at IS NOT NULL THEN 'refund' END) FROM {}"
            ).format(sql.Identifier(table))
        )
    }
    # Which legs reached each row: what money_in_flight counts as in transit.
    legs = {"debit": "debited_at", "credit": "credited_at", "refund": "refunded_at"}
    for expect in expected.values():
        expect["legs"] = " ".join(leg for leg, at in legs.items() if expect[at] is not None)
    for tid in sorted(set(got) | set(expected)):
        row, want = got.get(tid), expected.get(tid)
        if want is None:
            assert row is not None
            found.append(
                Violation(
                    table,
                    EXTRA,
                    row["from_account"],
                    None,
                    f"transfer {tid} ({row['state']}), but the store has no event of it up to "
                    f"position {books.position}",
                )
            )
        elif row is None:
            found.append(
                Violation(
                    table,
                    MISSING,
                    want["from_account"],
                    None,
                    f"no row for transfer {tid}, whose events in the store make it {want['state']}",
                )
            )
        elif diffs := [_differs(f, row[f], want[f]) for f in fields if row[f] != want[f]]:
            found.append(
                Violation(
                    table, WRONG, want["from_account"], None, f"transfer {tid}: " + _joined(diffs)
                )
            )
    return found


_COMPARE: dict[
    str, Callable[[psycopg.Connection[Any], Books, str, int | None], list[Violation]]
] = {
    "balances": _compare_balances,
    "statements": _compare_statements,
    "daily_totals": _compare_daily_totals,
    "transfers": _compare_transfers,
}
