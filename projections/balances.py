"""The account_balances read model: one row per account with its balance and limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor, sql

from ledger.accounts.events import (
    AccountClosed,
    AccountOpened,
    OverdraftLimitChanged,
    Posting,
)
from projections.feed import Applied

COLUMNS = (
    "account_id",
    "owner",
    "currency",
    "balance",
    "overdraft_limit",
    "status",
    "last_revision",
    "last_position",
    "updated_at",
)


class BalancesProjection:
    """Folds each account's events of a batch into one upsert."""

    name = "balances"
    tables = ("account_balances",)

    def apply(self, cur: Cursor[Any], events: Sequence[Applied], suffix: str) -> None:
        rows: dict[str, dict[str, Any]] = {}
        for stored, event in events:
            row = rows.setdefault(stored.account_id, dict.fromkeys(COLUMNS))
            row["account_id"] = stored.account_id
            match event:
                case AccountOpened(owner=owner, currency=currency, overdraft_limit=limit):
                    row.update(
                        owner=owner,
                        currency=currency,
                        overdraft_limit=limit,
                        balance=0,
                        status="open",
                    )
                case Posting(balance_after=balance):
                    row["balance"] = balance
                case OverdraftLimitChanged(limit=limit):
                    row["overdraft_limit"] = limit
                case AccountClosed():
                    row["status"] = "closed"
            row.update(
                last_revision=stored.revision,
                last_position=stored.position,
                updated_at=stored.recorded_at,
            )
        if not rows:
            return
        table = sql.Identifier("account_balances" + suffix)
        keep = sql.SQL(", ").join(
            sql.SQL("{c} = COALESCE(EXCLUDED.{c}, {t}.{c})").format(c=sql.Identifier(c), t=table)
            for c in COLUMNS[1:6]
        )
        query = sql.SQL(
            "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT (account_id) DO UPDATE SET "
            "{keep}, last_revision = EXCLUDED.last_revision, "
            "last_position = EXCLUDED.last_position, updated_at = EXCLUDED.updated_at"
        ).format(
            t=table,
            cols=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
            vals=sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)),
            keep=keep,
        )
        cur.executemany(query, [tuple(r[c] for c in COLUMNS) for r in rows.values()])


PROJECTION = BalancesProjection()
