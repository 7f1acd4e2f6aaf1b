"""The transfers read model: one row a transfer that moved money, from its legs' postings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor, sql

from ledger.accounts.events import Posting, PostingKind
from projections.feed import Applied

# A leg's kind → the state it shows, the time column it fills, and whether it is the debit.
_LEGS = {
    PostingKind.TRANSFER_OUT: ("debited", "debited_at"),
    PostingKind.TRANSFER_IN: ("completed", "credited_at"),
    PostingKind.TRANSFER_REFUND: ("failed", "refunded_at"),
}
_COLUMNS = (
    "transfer_id",
    "from_account",
    "to_account",
    "amount",
    "currency",
    "state",
    "description",
    "debited_at",
    "credited_at",
    "refunded_at",
    "updated_at",
)


def transfer_row(account_id: str, posting: Posting) -> dict[str, Any] | None:
    """The row a transfer leg's posting implies (None for any other posting)."""
    if posting.transfer_id is None or posting.counterparty is None:
        return None
    state, at_column = _LEGS[PostingKind(getattr(posting, "kind", ""))]
    debit = state == "debited"
    row = dict.fromkeys(_COLUMNS)
    row.update(
        transfer_id=posting.transfer_id,
        from_account=account_id if state != "completed" else posting.counterparty,
        to_account=posting.counterparty if state != "completed" else account_id,
        amount=-posting.amount if debit else posting.amount,
        currency=posting.currency,
        state=state,
        description=posting.description,
        updated_at=posting.occurred_at,
    )
    row[at_column] = posting.occurred_at
    return row


class TransfersProjection:
    """Upserts each transfer touched by a batch; a final state is never taken back."""

    name = "transfers"
    tables = ("transfers",)

    def apply(self, cur: Cursor[Any], events: Sequence[Applied], suffix: str) -> None:
        rows: list[dict[str, Any]] = []
        for stored, event in events:
            if isinstance(event, Posting) and (row := transfer_row(stored.account_id, event)):
                rows.append(row)
        if not rows:
            return
        t = sql.Identifier("transfers" + suffix)
        query = sql.SQL(
            "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT (transfer_id) DO UPDATE SET "
            "state = CASE WHEN {t}.state = 'debited' THEN EXCLUDED.state ELSE {t}.state END, "
            "debited_at = COALESCE({t}.debited_at, EXCLUDED.debited_at), "
            "credited_at = COALESCE({t}.credited_at, EXCLUDED.credited_at), "
            "refunded_at = COALESCE({t}.refunded_at, EXCLUDED.refunded_at), "
            "updated_at = GREATEST({t}.updated_at, EXCLUDED.updated_at)"
        ).format(
            t=t,
            cols=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)),
            vals=sql.SQL(", ").join(sql.Placeholder(c) for c in _COLUMNS),
        )
        cur.executemany(query, rows)


PROJECTION = TransfersProjection()
