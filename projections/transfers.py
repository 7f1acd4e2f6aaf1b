"""The transfers read model: one row a transfer, from its own stream and its legs' postings.

The transfer's stream gives its process state (requested, rejected, completed, failed) and the
reason of a refusal; the legs on the accounts give where the money is (in transit from the debit
until the credit or the refund), so that the row agrees with the balances at every position.
Facts merge commutatively: timestamps keep their first value, the stream's state only moves
forward, so a final state is never taken back whatever order events arrive in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import Cursor, sql

from ledger.accounts.events import Posting, PostingKind
from ledger.transfers.events import (
    TransferCompleted,
    TransferCredited,
    TransferCreditRefused,
    TransferDebited,
    TransferEvent,
    TransferFailed,
    TransferRejected,
    TransferRequested,
)
from projections.feed import Applied

# What `ledger transfers --state` shows: where the transfer is, from its stream and its legs.
STATES = ("requested", "debited", "completed", "failed", "rejected")
FINAL = ("completed", "failed", "rejected")
# The stream's own states, in the order they can only move: a later rank never goes back.
_RANK = {"requested": 1, "debited": 2, "credited": 3, "credit_refused": 3}
_RANK.update(dict.fromkeys(FINAL, 4))
_STREAM_STATE: dict[type, str] = {
    TransferRequested: "requested",
    TransferDebited: "debited",
    TransferRejected: "rejected",
    TransferCredited: "credited",
    TransferCompleted: "completed",
    TransferCreditRefused: "credit_refused",
    TransferFailed: "failed",
}
_LEG_AT = {
    PostingKind.TRANSFER_OUT: "debited_at",
    PostingKind.TRANSFER_IN: "credited_at",
    PostingKind.TRANSFER_REFUND: "refunded_at",
}
_COLUMNS = (
    "transfer_id",
    "from_account",
    "to_account",
    "amount",
    "currency",
    "state",
    "description",
    "stream_state",
    "reason",
    "requested_at",
    "debited_at",
    "credited_at",
    "refunded_at",
    "updated_at",
)
_FIRST_WINS = ("from_account", "to_account", "amount", "currency", "description")
_TIMES = ("requested_at", "debited_at", "credited_at", "refunded_at")

Row = dict[str, Any]


def leg_facts(account_id: str, posting: Posting) -> Row | None:
    """What a transfer leg's posting says of its transfer (None for any other posting)."""
    if posting.transfer_id is None or posting.counterparty is None:
        return None
    at_column = _LEG_AT[PostingKind(getattr(posting, "kind", ""))]
    credit = at_column == "credited_at"
    return {
        "transfer_id": posting.transfer_id,
        "from_account": posting.counterparty if credit else account_id,
        "to_account": account_id if credit else posting.counterparty,
        "amount": abs(posting.amount),
        "currency": posting.currency,
        "description": posting.description,
        at_column: posting.occurred_at,
        "updated_at": posting.occurred_at,
    }


def stream_facts(event: TransferEvent) -> Row:
    """What an event of the transfer's own stream says of it."""
    facts: Row = {"transfer_id": event.transfer_id, "updated_at": event.occurred_at}
    if isinstance(event, TransferRequested):
        facts.update(
            from_account=event.from_account,
            to_account=event.to_account,
            amount=event.amount,
            currency=event.currency,
            description=event.description,
            requested_at=event.occurred_at,
        )
    if (state := _STREAM_STATE.get(type(event))) is not None:
        facts["stream_state"] = state
    if reason := getattr(event, "reason", ""):
        facts["reason"] = reason
    return facts


def shown_state(row: Row) -> str:
    """The state a row shows: the stream's final state, else where its legs left the money."""
    if row.get("stream_state") in FINAL:
        return str(row["stream_state"])
    if row.get("credited_at") is not None:
        return "completed"
    if row.get("refunded_at") is not None:
        return "failed"
    if row.get("debited_at") is not None:
        return "debited"
    return "requested"


def merge(row: Row | None, facts: Row) -> Row:
    """The row with these facts added; commutative and idempotent, so order does not matter."""
    merged: Row = dict.fromkeys(_COLUMNS) if row is None else dict(row)
    merged["transfer_id"] = facts["transfer_id"]
    for column in (*_FIRST_WINS, *_TIMES):
        if merged[column] is None and facts.get(column) is not None:
            merged[column] = facts[column]
    new = facts.get("stream_state")
    if new is not None and _RANK[new] > _RANK.get(merged["stream_state"] or "", 0):
        merged["stream_state"] = new
    if facts.get("reason"):
        merged["reason"] = facts["reason"]
    at = facts["updated_at"]
    merged["updated_at"] = at if merged["updated_at"] is None else max(merged["updated_at"], at)
    merged["state"] = shown_state(merged)
    return merged


def facts_of(applied: Iterable[tuple[str, Posting | TransferEvent]]) -> Iterable[Row]:
    """The facts of (account id or "", event) pairs: legs of accounts, events of transfers."""
    for account_id, event in applied:
        if isinstance(event, Posting):
            if (facts := leg_facts(account_id, event)) is not None:
                yield facts
        else:
            yield stream_facts(event)


def fold_rows(facts: Iterable[Row], rows: dict[str, Row] | None = None) -> dict[str, Row]:
    """Rows by transfer id with the facts merged in (into `rows`, when given)."""
    rows = {} if rows is None else rows
    for f in facts:
        rows[f["transfer_id"]] = merge(rows.get(f["transfer_id"]), f)
    return rows


def complete(row: Row) -> bool:
    """A row can be stored once it knows its accounts (a leg or the request came)."""
    return all(row[c] is not None for c in _FIRST_WINS)


class TransfersProjection:
    """Upserts each transfer touched by a batch, merged with the row it had."""

    name = "transfers"
    tables = ("transfers",)
    follows_transfers = True  # also fed the transfer streams' events, not only accounts'

    def apply(self, cur: Cursor[Any], events: Sequence[Applied], suffix: str) -> None:
        pairs = (
            (stored.account_id, event)
            for stored, event in events
            if isinstance(event, Posting | TransferEvent)
        )
        touched = fold_rows(facts_of(pairs))
        if not touched:
            return
        t = sql.Identifier("transfers" + suffix)
        cols = sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
        had = cur.execute(
            sql.SQL("SELECT {cols} FROM {t} WHERE transfer_id = ANY(%s) FOR UPDATE").format(
                cols=cols, t=t
            ),
            (sorted(touched),),
        ).fetchall()
        rows = {r[0]: dict(zip(_COLUMNS, r, strict=True)) for r in had}
        for tid, facts in touched.items():
            facts = {k: v for k, v in facts.items() if v is not None}
            rows[tid] = merge(rows.get(tid), facts)
        query = sql.SQL(
            "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT (transfer_id) DO UPDATE SET {set}"
        ).format(
            t=t,
            cols=cols,
            vals=sql.SQL(", ").join(sql.Placeholder(c) for c in _COLUMNS),
            set=sql.SQL(", ").join(
                sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in _COLUMNS[1:]
            ),
        )
        cur.executemany(query, [rows[tid] for tid in sorted(touched) if complete(rows[tid])])


PROJECTION = TransfersProjection()
