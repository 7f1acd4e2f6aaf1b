"""A statement from the projection or from the write model, and how it is shown."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from cli.context import Context, make_ledger, projected_account, read_conn
from cli.lag import projection_lag
from cli.render import money

if TYPE_CHECKING:
    from projections.statement_view import PostingRow, Statement
    from projections.status import ProjectionStatus

STATEMENT_FORMATS = ("table", "json", "csv")


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


def show_statement(
    obj: Context, st: Statement, fmt: str, period: bool, lag: dict[str, Any] | None = None
) -> None:
    """Print a statement as a table, JSON or CSV; `period` adds the period and its balances;
    the JSON carries `lag` (the projection's lag fields) in its object or in every posting."""
    lag = lag or {}
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
    if fmt == "json":
        if period:
            obj.output.json(
                {
                    "account_id": st.account.account_id,
                    "currency": c,
                    "from": st.start.isoformat() if st.start else None,
                    "to": st.end.isoformat() if st.end else None,
                    "opening_balance": money(st.opening_balance, c),
                    "closing_balance": money(st.closing_balance, c),
                    "postings": postings,
                    **lag,
                }
            )
        else:
            obj.output.json([{**p, **lag} for p in postings])
        return
    columns = [
        "revision",
        "occurred_at",
        "kind",
        "amount",
        "balance_after",
        "transaction_id",
        "description",
        "transfer_id",
        "counterparty",
        "reverses",
        "reversed_by",
    ]
    rows = [["" if p[k] is None else str(p[k]) for k in columns] for p in postings]
    if fmt == "csv":
        obj.output.csv(columns, rows, text_columns={5, 6, 7, 9, 10})
        return
    # The table shows the transfer columns only when a line is a transfer's leg, and one
    # reversal column only when a line reverses or is reversed, so that a statement without
    # them keeps its width.
    shown = len(columns) - 4 + (2 if any(p.transfer_id for p in st.postings) else 0)
    headers = [
        ("rev", "right"),
        ("when (UTC)", "left"),
        ("kind", "left"),
        ("amount", "right"),
        ("balance", "right"),
        ("transaction", "left"),
        ("description", "left"),
        ("transfer", "left"),
        ("counterparty", "left"),
    ][:shown]
    for row, posting in zip(rows, st.postings, strict=True):
        row[1] = posting.occurred_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        del row[shown:]
    if any(p.reverses or p.reversed_by for p in st.postings):
        headers.append(("reversal", "left"))
        for row, posting in zip(rows, st.postings, strict=True):
            row.append(_reversal_cell(posting))
    period_text = f" from {st.start or 'the start'} to {st.end or 'today'}" if period else ""
    obj.output.table(
        f"Statement of {st.account.account_id} ({c}){period_text} — opening "
        f"{money(st.opening_balance, c)}, closing {money(st.closing_balance, c)}",
        headers,
        rows,
    )


def _reversal_cell(posting: PostingRow) -> str:
    if posting.reverses:
        return f"reverses {posting.reverses}"
    return f"reversed by {posting.reversed_by}" if posting.reversed_by else ""
