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
    "transfer_id",
    "counterparty",
)
# The columns' types as the migration creates them: binary COPY sends each value in that type.
TYPES = (
    "text",
    "int8",
    "int8",
    "uuid",
    "text",
    "text",
    "int8",
    "int8",
    "text",
    "timestamptz",
    "text",
    "text",
)


class StatementsProjection:
    """Copies in a statement row for every posting (deposits, withdrawals, reversals, transfer
    legs with their transfer and counterparty)."""

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
                event.transfer_id,
                event.counterparty,
            )
            for stored, event in events
            if isinstance(event, Posting)
        ]
        if not rows:
            return
        # Binary COPY, not an INSERT per row: one round trip a batch, no per-row parsing.
        query = sql.SQL("COPY {t} ({cols}) FROM STDIN (FORMAT BINARY)").format(
            t=sql.Identifier("account_statements" + suffix),
            cols=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        )
        with cur.copy(query) as copy:
            copy.set_types(list(TYPES))
            for row in rows:
                copy.write_row(row)


PROJECTION = StatementsProjection()
