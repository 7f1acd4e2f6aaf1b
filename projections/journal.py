"""The journal: postings across accounts from the statements read model, filtered or streamed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from ledger.money import exponent

MAX_BIGINT = 2**63 - 1
# Every posting column and its account's currency, in one order for the journal and the export.
_SELECT = sql.SQL(
    "SELECT s.account_id, s.revision, s.position, s.transaction_id, s.kind, s.amount,"
    " b.currency, s.balance_after, s.description, s.occurred_at, s.transfer_id,"
    " s.counterparty FROM account_statements s"
    " JOIN account_balances b ON b.account_id = s.account_id"
)


@dataclass(frozen=True)
class JournalRow:
    """One posting of any account, with the account's currency."""

    account_id: str
    revision: int
    position: int
    transaction_id: str
    kind: str
    amount: int
    currency: str
    balance_after: int
    description: str
    occurred_at: dt.datetime
    transfer_id: str | None
    counterparty: str | None


@dataclass(frozen=True)
class JournalFilter:
    """Which postings: every bound is optional; days are inclusive UTC days; amounts are
    magnitudes (a withdrawal of 30.00 matches --min 20) in each currency's major units."""

    account: str | None = None
    kind: str | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    search: str | None = None


def _day_start(day: dt.date | None) -> dt.datetime | None:
    return None if day is None else dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _like_pattern(text: str) -> str:
    """`text` anywhere, with LIKE's wildcards in it taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(
    conn: psycopg.Connection[Any], f: JournalFilter
) -> tuple[sql.Composable, dict[str, Any]]:
    """The amount join and the WHERE clause (only the conditions given, so that the planner
    sees plain predicates it can match to an index) and their parameters."""
    conditions: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if f.account is not None:
        conditions.append(sql.SQL("s.account_id = %(account)s"))
        params["account"] = f.account
    if f.kind is not None:
        conditions.append(sql.SQL("s.kind = %(kind)s"))
        params["kind"] = f.kind
    if f.start is not None:
        conditions.append(sql.SQL("s.occurred_at >= %(start)s"))
        params["start"] = _day_start(f.start)
    if f.end is not None:
        conditions.append(sql.SQL("s.occurred_at < %(end)s"))
        params["end"] = _day_start(f.end + dt.timedelta(days=1))
    if f.search:
        conditions.append(sql.SQL("s.description ILIKE %(search)s"))
        params["search"] = _like_pattern(f.search)
    joins: sql.Composable = sql.SQL("")
    if f.min_amount is not None or f.max_amount is not None:
        # An amount in major units is a different number of minor units in each currency:
        # the bounds in minor units of every currency the ledger has, joined by currency.
        joins = sql.SQL(
            " JOIN unnest(%(currencies)s::text[], %(lo)s::int8[], %(hi)s::int8[])"
            " AS m(currency, lo, hi) ON m.currency = b.currency"
        )
        conditions.append(sql.SQL("abs(s.amount) BETWEEN m.lo AND m.hi"))
        params |= _minor_bounds(conn, f.min_amount, f.max_amount)
    if not conditions:
        return joins, params
    return joins + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions), params


def _minor_bounds(
    conn: psycopg.Connection[Any], low: Decimal | None, high: Decimal | None
) -> dict[str, Any]:
    """Per currency of the ledger, the magnitude bounds in its minor units (rounded inward)."""
    currencies = [r[0] for r in conn.execute("SELECT DISTINCT currency FROM account_balances")]
    lo, hi = [], []
    for currency in currencies:
        scale = Decimal(10) ** exponent(currency)
        lo.append(0 if low is None else int((low * scale).to_integral_value(ROUND_CEILING)))
        hi.append(
            MAX_BIGINT if high is None else int((high * scale).to_integral_value(ROUND_FLOOR))
        )
    return {"currencies": currencies, "lo": lo, "hi": hi}


def journal(conn: psycopg.Connection[Any], f: JournalFilter, *, limit: int) -> list[JournalRow]:
    """The newest `limit` postings that match, newest first ($all order)."""
    where, params = _where(conn, f)
    query = _SELECT + where + sql.SQL(" ORDER BY s.position DESC LIMIT %(limit)s")
    with conn.cursor(row_factory=class_row(JournalRow)) as cur:
        return cur.execute(query, {**params, "limit": limit}).fetchall()


def journal_plan(conn: psycopg.Connection[Any], f: JournalFilter, *, limit: int) -> list[str]:
    """The planner's plan of `journal` for this filter (for the index benchmark)."""
    where, params = _where(conn, f)
    query = (
        sql.SQL("EXPLAIN ") + _SELECT + where + sql.SQL(" ORDER BY s.position DESC LIMIT %(limit)s")
    )
    return [r[0] for r in conn.execute(query, {**params, "limit": limit})]


def export_rows(conn: psycopg.Connection[Any], f: JournalFilter) -> Iterator[JournalRow]:
    """Every matching posting, oldest first ($all order), streamed row by row from the server
    (never the whole ledger in memory)."""
    where, params = _where(conn, f)
    query = _SELECT + where + sql.SQL(" ORDER BY s.position")
    with conn.cursor(row_factory=class_row(JournalRow)) as cur:
        yield from cur.stream(query, params)


def accounts_of_transaction(
    conn: psycopg.Connection[Any], transaction_id: str, account: str | None = None
) -> list[str]:
    """The accounts that have a posting with this transaction id (ids are per account)."""
    rows = conn.execute(
        "SELECT DISTINCT account_id FROM account_statements WHERE transaction_id = %s"
        " AND (%s::text IS NULL OR account_id = %s) ORDER BY account_id",
        (transaction_id, account, account),
    ).fetchall()
    return [r[0] for r in rows]


def is_transfer(conn: psycopg.Connection[Any], transfer_id: str) -> bool:
    """Whether the transfers read model has this transfer (its legs have ids of their own)."""
    return (
        conn.execute("SELECT 1 FROM transfers WHERE transfer_id = %s", (transfer_id,)).fetchone()
        is not None
    )
