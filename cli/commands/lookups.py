"""Lookup commands: tx (one transaction), journal (postings across accounts), history (who did
what), export (the whole ledger, streamed)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from cli.context import Context, context, make_ledger, read_conn
from cli.dates import parse_period
from cli.errors import ExitCode, fail, handled
from cli.lag import lag_fields, projection_lag
from cli.options import FormatOpt, FromOpt, JsonOpt, ToOpt, use_format
from cli.render import CSV_FORMULA_START, Column, money

if TYPE_CHECKING:
    from decimal import Decimal

    from ledger.audit import AuditEntry
    from projections.journal import JournalFilter, JournalRow

app = typer.Typer()

PANEL = "Lookups"
EXPORT_FORMATS = ("jsonl", "csv")
EXPORT_COLUMNS = (
    "account_id",
    "revision",
    "position",
    "transaction_id",
    "kind",
    "amount",
    "currency",
    "balance_after",
    "description",
    "occurred_at",
    "transfer_id",
    "counterparty",
)
# Free text a spreadsheet could run as a formula (CSV cells are prefixed, as `statement` does).
EXPORT_TEXT_COLUMNS = frozenset({"transaction_id", "description", "transfer_id", "counterparty"})

AccountOpt = Annotated[str | None, typer.Option("--account", "-a", help="Only this account.")]


def _when(at: dt.datetime | str) -> str:
    """A table's time: to the second, in UTC (JSON and CSV keep the full ISO time)."""
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


# tx: one row per event (CSV); the table is a text block: a headline of the first
# TX_HEADLINE columns, then one line for each other field that has a value.
TX_COLUMNS = tuple(
    Column(key, text=key in EXPORT_TEXT_COLUMNS or key in ("reverses", "description"))
    for key in (
        "account_id",
        "type",
        "kind",
        "amount",
        "currency",
        "balance_after",
        "description",
        "stream",
        "revision",
        "position",
        "occurred_at",
        "actor",
        "correlation_id",
        "causation_id",
        "transfer_id",
        "counterparty",
        "reverses",
    )
)
TX_HEADLINE = 6
HISTORY_COLUMNS = (
    Column("revision", "rev", right=True),
    Column("occurred_at", "time (UTC)", show=lambda d: _when(d["occurred_at"])),
    Column("actor", show=lambda d: d["actor"] or "?"),
    Column("what", text=True),
    Column("transaction_id", "transaction", text=True),
    Column("causation_id", "causation", text=True),
    Column("position", table=False),
    Column("type", table=False),
    Column("correlation_id", table=False),
)
JOURNAL_COLUMNS = (
    Column("occurred_at", "time (UTC)", show=lambda d: _when(d["occurred_at"])),
    Column("account_id", "account"),
    Column("kind"),
    Column("amount", right=True),
    Column("currency", "cur"),
    Column("transaction_id", "transaction", text=True),
    Column("description", text=True),
    Column("revision", table=False),
    Column("position", table=False),
    Column("balance_after", table=False),
    Column("transfer_id", table=False, text=True),
    Column("counterparty", table=False),
)


def _signed(minor: int, currency: str) -> str:
    return ("+" if minor > 0 else "") + money(minor, currency)


def _what(entry: AuditEntry, currency: str) -> str:
    """One line a clerk reads: what the event did."""
    from ledger.accounts.events import (
        AccountClosed,
        AccountOpened,
        OverdraftLimitChanged,
        Posting,
        PostingReversed,
    )

    e = entry.event
    if isinstance(e, AccountOpened):
        limit = money(e.overdraft_limit, e.currency)
        return f"opened for {e.owner} in {e.currency}, overdraft limit {limit}"
    if isinstance(e, OverdraftLimitChanged):
        was, now = money(e.previous_limit, currency), money(e.limit, currency)
        return f"overdraft limit {was} -> {now}"
    if isinstance(e, AccountClosed):
        return "closed"
    assert isinstance(e, Posting)
    text = f"{e.kind} {_signed(e.amount, e.currency)} {e.currency}"
    if isinstance(e, PostingReversed):
        text += f" (reverses {e.reverses})"
    if e.transfer_id:
        text += f" (transfer {e.transfer_id}, {e.counterparty})"
    return text + (f": {e.description}" if e.description else "")


def _event_doc(entry: AuditEntry) -> dict[str, Any]:
    """An event of a transaction: where it is, what it posted, who caused it."""
    from ledger.accounts.events import Posting, PostingReversed

    e = entry.event
    assert isinstance(e, Posting)
    return {
        "account_id": entry.account_id,
        "stream": f"account-{entry.account_id}",
        "revision": entry.revision,
        "position": entry.position,
        "type": e.type,
        "kind": str(e.kind),
        "amount": money(e.amount, e.currency),
        "currency": e.currency,
        "balance_after": money(e.balance_after, e.currency),
        "description": e.description,
        "occurred_at": e.occurred_at.isoformat(),
        "actor": entry.actor,
        "correlation_id": entry.correlation_id,
        "causation_id": entry.causation_id,
        "transfer_id": e.transfer_id,
        "counterparty": e.counterparty,
        "reverses": e.reverses if isinstance(e, PostingReversed) else None,
    }


def _reversal_doc(entry: AuditEntry) -> dict[str, Any]:
    return {
        "account_id": entry.account_id,
        "transaction_id": entry.transaction_id,
        "revision": entry.revision,
        "position": entry.position,
        "occurred_at": entry.occurred_at.isoformat(),
        "actor": entry.actor,
    }


@app.command(rich_help_panel=PANEL)
def tx(
    ctx: typer.Context,
    transaction_id: Annotated[str, typer.Argument(help="Transaction id (the --tx of a write).")],
    account: AccountOpt = None,
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """One transaction: its events, positions, actor, correlation and reversals. Example:
    ledger tx t-42 (--format csv: one row per event)"""
    obj = context(ctx, json_out)
    with handled(obj):
        use_format(obj.output, fmt, json_out)
        from ledger.accounts.ids import check_account_id, check_transaction_id
        from ledger.audit import transaction_events

        check_transaction_id(transaction_id)
        if account is not None:
            accounts = [check_account_id(account)]
        else:
            from projections.journal import accounts_of_transaction, is_transfer

            with read_conn(obj) as conn:
                accounts = accounts_of_transaction(conn, transaction_id)
                if not accounts and is_transfer(conn, transaction_id):
                    fail(
                        f"{transaction_id} is a transfer, not a posting: `ledger "
                        f"transfer-status {transaction_id}` shows it",
                        ExitCode.REFUSED,
                    )
        store = make_ledger(obj).handler.store
        found = [t for a in accounts if (t := transaction_events(store, a, transaction_id))]
        if not found:
            where = (
                f" on account {account}"
                if account
                else " in the statements read model (a write not projected yet is found with "
                "--account, which reads the account's stream)"
            )
            fail(f"no such transaction: {transaction_id}{where}", ExitCode.REFUSED)
        events = [_event_doc(e) for t in found for e in t.events]
        reversed_by = [_reversal_doc(e) for t in found for e in t.reversed_by]
        if obj.output.format != "table":
            obj.output.listing(
                transaction_id,
                TX_COLUMNS,
                events,
                document={
                    "transaction_id": transaction_id,
                    "events": events,
                    "reversed_by": reversed_by,
                },
            )
            return
        for d in events:
            obj.output.line(
                f"{transaction_id}: {d['kind']} "
                f"{d['amount']} {d['currency']} on {d['account_id']} "
                f"(balance after {d['balance_after']})"
            )
            for key in (c.key for c in TX_COLUMNS[TX_HEADLINE:]):
                if d[key] is not None and d[key] != "":
                    obj.output.line(f"  {key.replace('_', ' ')}: {d[key]}")
        for r in reversed_by:
            obj.output.line(
                f"reversed by {r['transaction_id']} on {r['account_id']} (revision {r['revision']},"
                f" {r['occurred_at']}, {r['actor']})"
            )


@app.command(rich_help_panel=PANEL)
def history(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account id.")],
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Who did what, when: every event of the account with its actor and causation. Example:
    ledger history alice"""
    obj = context(ctx, json_out)
    with handled(obj):
        use_format(obj.output, fmt, json_out)
        from ledger.accounts.events import AccountOpened
        from ledger.accounts.ids import check_account_id
        from ledger.audit import account_history
        from ledger.errors import AccountNotFoundError

        check_account_id(account)
        entries = account_history(make_ledger(obj).handler.store, account)
        if not entries:
            raise AccountNotFoundError(account)
        first = entries[0].event
        currency = first.currency if isinstance(first, AccountOpened) else "XXX"
        docs: list[dict[str, Any]] = [
            {
                "revision": e.revision,
                "position": e.position,
                "type": e.event.type,
                "occurred_at": e.occurred_at.isoformat(),
                "actor": e.actor,
                "correlation_id": e.correlation_id,
                "causation_id": e.causation_id,
                "transaction_id": e.transaction_id,
                "what": _what(e, currency),
            }
            for e in entries
        ]
        obj.output.listing(
            f"history of {account}: {len(docs)} events",
            HISTORY_COLUMNS,
            docs,
            document={"account_id": account, "events": docs},
        )


def _amount_bound(text: str | None, option: str) -> Decimal | None:
    if text is None:
        return None
    from decimal import Decimal

    from ledger.errors import InvalidInputError
    from ledger.money import check_amount_syntax

    try:
        return Decimal(check_amount_syntax(text, allow_zero=True, what="the amount"))
    except InvalidInputError as exc:
        fail(f"{option}: {exc}")


def _filter(
    obj: Context,
    *,
    account: str | None = None,
    kind: str | None = None,
    start: str | None = None,
    end: str | None = None,
    low: str | None = None,
    high: str | None = None,
    search: str | None = None,
) -> JournalFilter:
    """The journal filter of the options, each checked (exit 2 on a bad one)."""
    from ledger.accounts.events import PostingKind
    from ledger.accounts.ids import check_account_id
    from projections.journal import JournalFilter

    if account is not None:
        check_account_id(account)
    kinds = [str(k) for k in PostingKind]
    if kind is not None and kind not in kinds:
        fail(f"--kind is one of {', '.join(kinds)}, not {kind!r}")
    first, last = parse_period(start, end, today=obj.settings.clock().date())
    min_amount, max_amount = _amount_bound(low, "--min"), _amount_bound(high, "--max")
    if min_amount is not None and max_amount is not None and min_amount > max_amount:
        fail(f"--min {low} is more than --max {high}")
    return JournalFilter(account, kind, first, last, min_amount, max_amount, search or None)


def _posting_doc(r: JournalRow) -> dict[str, Any]:
    return {
        "account_id": r.account_id,
        "revision": r.revision,
        "position": r.position,
        "transaction_id": r.transaction_id,
        "kind": r.kind,
        "amount": money(r.amount, r.currency),
        "currency": r.currency,
        "balance_after": money(r.balance_after, r.currency),
        "description": r.description,
        "occurred_at": r.occurred_at.isoformat(),
        "transfer_id": r.transfer_id,
        "counterparty": r.counterparty,
    }


@app.command(rich_help_panel=PANEL)
def journal(
    ctx: typer.Context,
    account: AccountOpt = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="deposit, withdrawal, reversal, transfer_…")
    ] = None,
    start: FromOpt = None,
    end: ToOpt = None,
    low: Annotated[str | None, typer.Option("--min", help="Amounts of at least this.")] = None,
    high: Annotated[str | None, typer.Option("--max", help="Amounts of at most this.")] = None,
    search: Annotated[
        str | None, typer.Option("--search", help="Text in the description (any case).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="The newest N postings.")] = 100,
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Postings across accounts, newest first, from the read models. Example:
    ledger journal --from 2026-11 --kind withdrawal --min 100"""
    obj = context(ctx, json_out)
    with handled(obj):
        use_format(obj.output, fmt, json_out)
        from projections.journal import journal as query

        f = _filter(
            obj, account=account, kind=kind, start=start, end=end, low=low, high=high,
            search=search,
        )  # fmt: skip
        with read_conn(obj) as conn:
            rows = query(conn, f, limit=limit + 1)
            lag = lag_fields(projection_lag(obj, conn, "statements"))
        more = len(rows) > limit
        docs = [_posting_doc(r) for r in rows[:limit]]
        if more:
            obj.output.note(
                f"note: showing the newest {limit} matching postings; more match "
                "(raise --limit or narrow the filter)"
            )
        obj.output.listing(
            f"journal: {len(docs)} postings" + (f" (newest {limit})" if more else ""),
            JOURNAL_COLUMNS,
            docs,
            document={"postings": docs, "more": more, **lag},
        )


def _jsonl(rows: Iterable[dict[str, Any]], out: IO[str]) -> None:
    for doc in rows:
        out.write(json.dumps(doc, ensure_ascii=False) + "\n")


def _csv(rows: Iterable[dict[str, Any]], out: IO[str]) -> None:
    import csv

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for doc in rows:
        writer.writerow(
            [
                "'" + v if k in EXPORT_TEXT_COLUMNS and v and v.startswith(CSV_FORMULA_START) else v
                for k, v in ((k, doc[k]) for k in EXPORT_COLUMNS)
            ]
        )


def _write_private(path: Path, write: Callable[[IO[str]], None]) -> None:
    """Write a file only its owner can read (0600), whole or not at all: into a private
    temporary file beside it, renamed over it once complete."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older partial file may have had another mode
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            write(out)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@app.command(rich_help_panel=PANEL)
def export(
    ctx: typer.Context,
    start: FromOpt = None,
    end: ToOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (mode 0600).")
    ] = None,
) -> None:
    """Every posting of every account (transfer legs included) in $all order, streamed.
    Example: ledger export --format csv -o ledger.csv"""
    obj = context(ctx)
    with handled(obj):
        from projections.journal import export_rows

        if fmt not in EXPORT_FORMATS:
            fail(f"--format is jsonl or csv, not {fmt!r}")
        f = _filter(obj, start=start, end=end)
        if output is not None and output.is_dir():
            fail(f"--output {output} is a directory")
        writer = _jsonl if fmt == "jsonl" else _csv
        with read_conn(obj) as conn:
            projection_lag(obj, conn, "statements")

            def docs() -> Iterator[dict[str, Any]]:
                return (_posting_doc(r) for r in export_rows(conn, f))

            if output is None:
                writer(docs(), sys.stdout)
                sys.stdout.flush()
            else:
                _write_private(output, lambda out: writer(docs(), out))
                obj.output.note(f"exported to {output}")
