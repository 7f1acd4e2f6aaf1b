"""Queries on the read models: balances (now or as of a date/position), statements, accounts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from projections.statement_view import BalanceRow, PostingRow, Statement, build_statement

__all__ = [
    "BalanceRow",
    "PostingRow",
    "Statement",
    "balance_as_of",
    "get_balance",
    "list_accounts",
    "statement",
]


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def get_balance(conn: psycopg.Connection[Any], account_id: str) -> BalanceRow | None:
    """The account's row in the balance projection, if it has one."""
    with conn.cursor(row_factory=class_row(BalanceRow)) as cur:
        return cur.execute(
            "SELECT account_id, owner, currency, balance, overdraft_limit, status, last_revision,"
            " last_position, updated_at FROM account_balances WHERE account_id = %s",
            (account_id,),
        ).fetchone()


def list_accounts(conn: psycopg.Connection[Any]) -> list[BalanceRow]:
    """Every account the balance projection knows, by id."""
    with conn.cursor(row_factory=class_row(BalanceRow)) as cur:
        return cur.execute(
            "SELECT account_id, owner, currency, balance, overdraft_limit, status, last_revision,"
            " last_position, updated_at FROM account_balances ORDER BY account_id"
        ).fetchall()


def balance_as_of(
    conn: psycopg.Connection[Any],
    account_id: str,
    *,
    day: dt.date | None = None,
    position: int | None = None,
) -> tuple[int, int | None]:
    """(balance, revision of the last posting) at the end of a UTC day or at a $all position."""
    if day is not None:
        row = conn.execute(
            "SELECT balance_after, revision FROM account_statements WHERE account_id = %s"
            " AND occurred_at < %s ORDER BY revision DESC LIMIT 1",
            (account_id, _day_start(day + dt.timedelta(days=1))),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT balance_after, revision FROM account_statements WHERE account_id = %s"
            " AND position <= %s ORDER BY revision DESC LIMIT 1",
            (account_id, position or 0),
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, None)


# A statement's period: NULL bounds mean "no bound", so that one static query serves them all.
_IN_PERIOD = sql.SQL(
    "WHERE account_id = %(account)s"
    " AND (%(start)s::timestamptz IS NULL OR occurred_at >= %(start)s)"
    " AND (%(end)s::timestamptz IS NULL OR occurred_at < %(end)s)"
)


def statement(
    conn: psycopg.Connection[Any],
    account: BalanceRow,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    limit: int | None = None,
) -> Statement:
    """Postings from `start` to `end` (both inclusive, UTC days); `limit` keeps the newest N."""
    # NULL bounds and a NULL LIMIT mean "no bound": one static, parameterised query.
    params = {
        "account": account.account_id,
        "start": _day_start(start) if start is not None else None,
        "end": _day_start(end + dt.timedelta(days=1)) if end is not None else None,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(PostingRow)) as cur:
        rows = cur.execute(
            sql.SQL(
                "SELECT account_id, revision, position, transaction_id, kind, amount,"
                " balance_after, description, occurred_at, transfer_id, counterparty, reverses,"
                " reversed_by FROM account_statements {} ORDER BY revision DESC LIMIT %(limit)s"
            ).format(_IN_PERIOD),
            params,
        ).fetchall()
    earlier = 0
    if limit is not None and len(rows) == limit:
        # The limit may have cut the period: the statement says how many it left out.
        total = conn.execute(
            sql.SQL("SELECT count(*) FROM account_statements {}").format(_IN_PERIOD), params
        ).fetchone()
        earlier = (total[0] if total else limit) - limit
    postings = list(reversed(rows))
    if start is not None and (limit is None or len(postings) < limit):
        # The statement opens at the balance of the period's eve: the last posting before it.
        postings[:0] = _last_posting_before(conn, account.account_id, start)
    return build_statement(account, postings, start=start, end=end, limit=limit, earlier=earlier)


def _last_posting_before(
    conn: psycopg.Connection[Any], account_id: str, day: dt.date
) -> list[PostingRow]:
    with conn.cursor(row_factory=class_row(PostingRow)) as cur:
        return cur.execute(
            "SELECT account_id, revision, position, transaction_id, kind, amount, balance_after,"
            " description, occurred_at, transfer_id, counterparty, reverses, reversed_by"
            " FROM account_statements"
            " WHERE account_id = %s"
            " AND occurred_at < %s ORDER BY revision DESC LIMIT 1",
            (account_id, _day_start(day)),
        ).fetchall()


@dataclass(frozen=True)
class TransferRow:
    """A transfer as the transfers read model has it."""

    transfer_id: str
    from_account: str
    to_account: str
    amount: int
    currency: str
    state: str
    description: str
    reason: str | None
    requested_at: dt.datetime | None
    debited_at: dt.datetime | None
    credited_at: dt.datetime | None
    refunded_at: dt.datetime | None
    updated_at: dt.datetime


def list_transfers(
    conn: psycopg.Connection[Any], *, account: str | None = None, state: str | None = None
) -> list[TransferRow]:
    """Transfers from or to `account` (None: all) in `state` (None: any), newest first."""
    with conn.cursor(row_factory=class_row(TransferRow)) as cur:
        return cur.execute(
            "SELECT transfer_id, from_account, to_account, amount, currency, state, description,"
            " reason, requested_at, debited_at, credited_at, refunded_at, updated_at"
            " FROM transfers"
            " WHERE (%(account)s::text IS NULL OR from_account = %(account)s"
            " OR to_account = %(account)s) AND (%(state)s::text IS NULL OR state = %(state)s)"
            " ORDER BY updated_at DESC, transfer_id",
            {"account": account, "state": state},
        ).fetchall()
