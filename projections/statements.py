"""The account_statements read model: one row per posting, with the running balance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor, sql

from ledger.accounts.events import Posting, PostingReversed
from ledger.accounts.window import WINDOW_SIZE
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
    "reverses",
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
    "text",
)


# A reversal's target is the latest earlier posting with the transaction id it names, and
# the decider finds it among the account's last WINDOW_SIZE postings: so only those are read.
_LINK = (
    "UPDATE {t} SET reversed_by = %(tx)s WHERE account_id = %(account)s AND revision = ("
    " SELECT revision FROM (SELECT revision, transaction_id FROM {t}"
    " WHERE account_id = %(account)s AND revision < %(revision)s"
    " ORDER BY revision DESC LIMIT %(window)s) recent"
    " WHERE transaction_id = %(reverses)s ORDER BY revision DESC LIMIT 1)"
)


class StatementsProjection:
    """Copies in a statement row for every posting (deposits, withdrawals, reversals, transfer
    legs with their transfer and counterparty), and marks a reversed posting with the
    transaction that reversed it."""

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
                event.reverses if isinstance(event, PostingReversed) else None,
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
        # After the copy: a reversal may reverse a posting of this very batch.
        links = [
            {
                "account": stored.account_id,
                "revision": stored.revision,
                "tx": event.transaction_id,
                "reverses": event.reverses,
                "window": WINDOW_SIZE,
            }
            for stored, event in events
            if isinstance(event, PostingReversed)
        ]
        if links:
            table = sql.Identifier("account_statements" + suffix)
            cur.executemany(sql.SQL(_LINK).format(t=table), links)


PROJECTION = StatementsProjection()
