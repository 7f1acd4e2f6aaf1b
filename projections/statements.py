"""The account_statements read model: one row per posting, with the running balance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor, sql

from ledger.accounts.events import Posting
from projections.feed import Applied

COLUMNS = (
    "account_id",
    "revision",
    "position",
    "event_id",
    "transaction_id",
    "kind",
    "amount",
    "balance_after",
    "description",
    "occurred_at",
)


class StatementsProjection:
    """Inserts a statement row for every posting (deposits, withdrawals, reversals)."""

    name = "statements"
    tables = ("account_statements",)

    def apply(self, cur: Cursor[Any], events: Sequence[Applied], suffix: str) -> None:
        rows = [
            (
                stored.account_id,
                stored.revision,
                stored.position,
                stored.event_id,
                event.transaction_id,
                str(event.kind),
                event.amount,
                event.balance_after,
                event.description,
                event.occurred_at,
            )
            for stored, event in events
            if isinstance(event, Posting)
        ]
        if not rows:
            return
        query = sql.SQL("INSERT INTO {t} ({cols}) VALUES ({vals})").format(
            t=sql.Identifier("account_statements" + suffix),
            cols=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
            vals=sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)),
        )
        cur.executemany(query, rows)
