"""A statement from the projection or from the write model, and how it is shown."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cli.context import Context, make_ledger, projected_account, read_conn
from cli.lag import projection_lag
from cli.render import Column, money

if TYPE_CHECKING:
    from projections.statement_view import Statement
    from projections.status import ProjectionStatus


def projected_statement(
    obj: Context,
    account: str,
    first: dt.date | None,
    last: dt.date | None,
    limit: int | None,
    min_revision: int | None,
) -> tuple[Statement, bool, ProjectionStatus]:
    """The statement from the projections, whether waiting for `min_revision` timed out, and
    how far behind the statements projection is (said on stderr when it is)."""
    from projections.queries import statement

    with read_conn(obj) as conn:
        row, timed_out = projected_account(obj, conn, account, min_revision)
        st = statement(conn, row, start=first, end=last, limit=limit)
        return st, timed_out, projection_lag(obj, conn, "statements")


def consistent_statement(
    obj: Context, account: str, first: dt.date | None, last: dt.date | None, limit: int | None
) -> Statement:
    """The statement from the account's stream (the write model), by the projection's rule."""
    from ledger.accounts.decider import Status
    from ledger.accounts.events import Posting, PostingReversed
    from ledger.errors import AccountNotFoundError
    from ledger.writemodel import fold_account
    from projections.statement_view import BalanceRow, PostingRow, build_statement, reversal_links

    store = make_ledger(obj).handler.store
    state, _ = fold_account(store, account)
    if state.status is Status.NEW:
        raise AccountNotFoundError(account)
    events = [
        (stored.revision, stored.commit_position, e)
        for stored in store.read(account)
        if isinstance(e := stored.event, Posting)
    ]
    reverses = {r: e.reverses for r, _, e in events if isinstance(e, PostingReversed)}
    links = reversal_links((r, e.transaction_id, reverses.get(r)) for r, _, e in events)
    postings = [
        PostingRow(
            account,
            revision,
            position,
            e.transaction_id,
            str(e.kind),
            e.amount,
            e.balance_after,
            e.description,
            e.occurred_at,
            e.transfer_id,
            e.counterparty,
            reverses.get(revision),
            links.get(revision),
        )
        for revision, position, e in events
    ]
    row = BalanceRow(
        account,
        state.owner,
        state.currency,
        state.balance,
        state.overdraft_limit,
        state.status.value,
        state.revision,
        0,
        obj.settings.clock(),
    )
    return build_statement(row, postings, start=first, end=last, limit=limit)


STATEMENT_COLUMNS = (
    Column("revision", "rev", right=True),
    Column("occurred_at", "when (UTC)", show=lambda p: _when(p["occurred_at"])),
    Column("kind"),
    Column("amount", right=True),
    Column("balance_after", "balance", right=True),
    Column("currency", table=False),  # the table's title names it
    Column("transaction_id", "transaction", text=True),
    Column("description", text=True),
    Column("transfer_id", "transfer", text=True),
    Column("counterparty"),
    # The table shows both links in one column; CSV and JSON carry each.
    Column("reverses", "reversal", text=True, show=lambda p: _reversal_cell(p)),
    Column("reversed_by", text=True, table=False),
)
# The table shows the transfer columns only when a line is a transfer's leg, and the reversal
# column only when a line reverses or is reversed, so that a statement without them keeps its
# width.
TRANSFER_COLUMNS = ("transfer_id", "counterparty")
REVERSAL_COLUMNS = ("reverses",)


def _reversal_cell(posting: Mapping[str, Any]) -> str:
    if posting["reverses"]:
        return f"reverses {posting['reverses']}"
    return f"reversed by {posting['reversed_by']}" if posting["reversed_by"] else ""


def _when(occurred_at: str) -> str:
    return dt.datetime.fromisoformat(occurred_at).strftime("%Y-%m-%d %H:%M:%S")


def _title(st: Statement, period: bool) -> str:
    """The table's title: the account, the period, and the balances before and after."""
    c, shown = st.account.currency, len(st.postings)
    period_text = f" from {st.start or 'the start'} to {st.end or 'today'}" if period else ""
    opening, closing = money(st.opening_balance, c), money(st.closing_balance, c)
    if st.omitted:
        # The limit cut the period: the opening balance is the one before the first line shown.
        last = "the last posting" if shown == 1 else f"the last {shown} postings"
        it = "it" if shown == 1 else "them"
        balances = f"{last}, {st.omitted} earlier not shown: balance before {it} {opening}"
    else:
        balances = f"opening {opening}"
    return (
        f"Statement of {st.account.account_id} ({c}){period_text} — {balances}, closing {closing}"
    )


def show_statement(
    obj: Context, st: Statement, period: bool, lag: dict[str, Any] | None = None
) -> None:
    """Print a statement in the output's format: JSON is always one object with its postings
    (and the projection's `lag` fields); `period` puts the period in the table's title."""
    c = st.account.currency
    postings = [
        {
            "revision": p.revision,
            "kind": p.kind,
            "amount": money(p.amount, c),
            "balance_after": money(p.balance_after, c),
            "transaction_id": p.transaction_id,
            "description": p.description,
            "occurred_at": p.occurred_at.astimezone(dt.UTC).isoformat(),
            "transfer_id": p.transfer_id,
            "counterparty": p.counterparty,
            "reverses": p.reverses,
            "reversed_by": p.reversed_by,
        }
        for p in st.postings
    ]
    document = {
        "account_id": st.account.account_id,
        "currency": c,
        "from": st.start.isoformat() if st.start else None,
        "to": st.end.isoformat() if st.end else None,
        "opening_balance": money(st.opening_balance, c),
        "closing_balance": money(st.closing_balance, c),
        "postings": postings,
        "omitted": st.omitted,
        **(lag or {}),
    }
    hidden = set() if any(p.transfer_id for p in st.postings) else set(TRANSFER_COLUMNS)
    if not any(p.reverses or p.reversed_by for p in st.postings):
        hidden.update(REVERSAL_COLUMNS)
    columns = [replace(col, table=False) if col.key in hidden else col for col in STATEMENT_COLUMNS]
    obj.output.listing(
        _title(st, period),
        columns,
        [{**p, "currency": c} for p in postings],
        document=document,
    )
    if st.omitted and not obj.output.json_mode:
        postings_are = "posting is" if st.omitted == 1 else "postings are"
        obj.output.note(
            f"note: {st.omitted} earlier {postings_are} not shown (--limit {len(postings)}); "
            "the opening balance is the balance before the first posting shown"
        )
