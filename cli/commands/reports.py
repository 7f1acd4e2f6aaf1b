"""Report commands: balance, statement, accounts, verify."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.context import (
    Context,
    context,
    make_ledger,
    projected_account,
    read_conn,
    require_revision,
    write_model_fold,
)
from cli.dates import AsOf, parse_as_of, parse_period
from cli.errors import ExitCode, fail, handled
from cli.lag import lag_fields, projection_lag
from cli.options import FormatOpt, FromOpt, JsonOpt, ToOpt, WaitForRevisionOpt, use_format
from cli.render import Column, money
from cli.statements import consistent_statement, projected_statement, show_statement
from ledger.errors import WaitTimeoutError

if TYPE_CHECKING:
    import psycopg

    from ledger.writemodel import WriteModelFold
    from projections.verify import Violation

app = typer.Typer()

PANEL = "Reports"


# The CSV's columns whatever the flags: a field a read does not have is an empty cell.
BALANCE_COLUMNS = tuple(
    Column(key)
    for key in (
        "account_id",
        "balance",
        "currency",
        "available",
        "overdraft_limit",
        "status",
        "revision",
        "consistent",
        "as_of",
        "lag_events",
        "runner",
    )
)


def _show_balance(obj: Context, doc: dict[str, Any]) -> None:
    if obj.output.format != "table":
        obj.output.listing(doc["account_id"], BALANCE_COLUMNS, [doc], document=doc)
    else:
        where = "write model" if doc["consistent"] else "projection"
        when = f" as of {doc['as_of']}" if doc["as_of"] else ""
        funds = f"available {doc['available']}, {doc['status']}, " if doc["available"] else ""
        obj.output.line(
            f"{doc['account_id']}: {doc['balance']} {doc['currency']}{when} "
            f"({funds}revision {doc['revision']}, {where})"
        )


@app.command(rich_help_panel=PANEL)
def balance(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account id.")],
    consistent: Annotated[
        bool, typer.Option("--consistent", help="Fold the write model instead (always current).")
    ] = False,
    min_revision: Annotated[
        int | None,
        typer.Option("--min-revision", help="Wait until the projection has this revision.", min=0),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="The end of a UTC day (2026-11-26, 2026-11, today, yesterday) or position:N.",
        ),
    ] = None,
    fmt: FormatOpt = None,
    wait_for_revision: WaitForRevisionOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Show a balance (from the projection unless --consistent). Example: ledger balance alice"""
    obj = context(ctx, json_out)
    with handled(obj):
        from ledger.accounts.ids import check_existing_account_id

        use_format(obj.output, fmt, json_out)
        check_existing_account_id(account)
        if consistent and min_revision is not None:
            fail("use either --consistent or --min-revision, not both")
        point = parse_as_of(as_of, today=obj.settings.clock().date()) if as_of else None
        if consistent:
            if as_of:
                fail("--as-of reads the projection; it cannot be combined with --consistent")
            state = make_ledger(obj).account(account)
            doc = {
                "account_id": account,
                "balance": money(state.balance, state.currency),
                "currency": state.currency,
                "revision": state.revision,
                "consistent": True,
                **_funds(state.balance, state.overdraft_limit, state.currency, state.status.value),
                # One shape whatever the flags: the write model has no as-of and no lag.
                "as_of": None,
                "lag_events": None,
                "runner": None,
            }
            _show_balance(obj, doc)
            return
        with read_conn(obj) as conn:
            if min_revision is not None and not wait_for_revision:
                require_revision(obj, conn, account, min_revision)
            row, timed_out = projected_account(obj, conn, account, min_revision)
            amount, revision = row.balance, row.last_revision
            funds = _funds(row.balance, row.overdraft_limit, row.currency, row.status)
            if point is not None:
                amount, revision = _balance_as_of(obj, conn, account, point)
                # The read models keep today's limit and status only, not their history.
                funds = dict.fromkeys(funds)
            doc = {
                "account_id": account,
                "balance": money(amount, row.currency),
                "currency": row.currency,
                "revision": revision,
                "consistent": False,
                **funds,
                "as_of": None if point is None else str(point),
            }
            doc |= lag_fields(projection_lag(obj, conn, "balances"))
            _show_balance(obj, doc)
        if timed_out:
            raise WaitTimeoutError(
                f"the balance projection did not reach revision {min_revision} of {account} "
                f"within {obj.settings.wait_timeout:g}s"
            )


def _funds(balance: int, limit: int, currency: str, status: str) -> dict[str, str | None]:
    """What the account can still pay out (balance + overdraft limit), and open or closed."""
    return {
        "available": money(balance + limit, currency),
        "overdraft_limit": money(limit, currency),
        "status": status,
    }


def _balance_as_of(
    obj: Context, conn: psycopg.Connection[Any], account: str, point: AsOf
) -> tuple[int, int]:
    """(balance, revision) at a past point; a point before the account was opened is an error
    that says when it was opened (never a balance at `revision -1`)."""
    from ledger.errors import AccountNotFoundError
    from projections.queries import balance_as_of

    amount, posted = balance_as_of(conn, account, day=point.day, position=point.position)
    if posted is not None:
        return amount, posted
    opened = make_ledger(obj).handler.store.read_one(account, revision=0)
    if opened is None:
        raise AccountNotFoundError(account)
    opened_day = opened.event.occurred_at.astimezone(dt.UTC).date()
    if (point.day is not None and opened_day > point.day) or (
        point.position is not None and opened.commit_position > point.position
    ):
        fail(
            f"account {account} did not exist yet as of {point}: it was opened on "
            f"{opened.event.occurred_at.isoformat()} (position {opened.commit_position})",
            ExitCode.REFUSED,
        )
    return 0, opened.revision


@app.command(rich_help_panel=PANEL)
def statement(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account id.")],
    start: FromOpt = None,
    end: ToOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Keep the most recent N postings.")
    ] = None,
    fmt: FormatOpt = None,
    consistent: Annotated[
        bool, typer.Option("--consistent", help="Read the write model instead.")
    ] = False,
    min_revision: Annotated[
        int | None, typer.Option("--min-revision", min=0, help="Wait for this revision first.")
    ] = None,
    wait_for_revision: WaitForRevisionOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Postings of a period with opening and closing balances. Example: ledger statement alice"""
    obj = context(ctx, json_out)
    with handled(obj):
        from ledger.accounts.ids import check_existing_account_id

        use_format(obj.output, fmt, json_out)
        check_existing_account_id(account)
        if consistent and min_revision is not None:
            fail("use either --consistent or --min-revision, not both")
        first, last = parse_period(start, end, today=obj.settings.clock().date())
        if first is not None and last is None:
            # The period is resolved against "today" (LEDGER_NOW / --now fixes it) and echoed.
            last = max(first, obj.settings.clock().date())
        timed_out = False
        lag: dict[str, Any] = {}
        if min_revision is not None and not wait_for_revision:
            with read_conn(obj) as conn:
                require_revision(obj, conn, account, min_revision)
        if consistent:
            st = consistent_statement(obj, account, first, last, limit)
        else:
            st, timed_out, status = projected_statement(
                obj, account, first, last, limit, min_revision
            )
            lag = lag_fields(status)
        show_statement(obj, st, first is not None or last is not None, lag)
        if timed_out:
            # Like `balance`: what the projection has is on stdout, and the exit code says
            # that it may not include the awaited revision yet.
            raise WaitTimeoutError(
                f"the projections did not reach revision {min_revision} of {account} "
                f"within {obj.settings.wait_timeout:g}s; what it had is shown"
            )


ACCOUNT_COLUMNS = (
    Column("account_id", "account", text=True),
    Column("owner", text=True),
    Column("balance", right=True),
    Column("currency", "cur"),
    Column("overdraft_limit", "overdraft", right=True),
    Column("status"),
    Column("revision", right=True, table=False),
)


@app.command(rich_help_panel=PANEL)
def accounts(ctx: typer.Context, fmt: FormatOpt = None, json_out: JsonOpt = False) -> None:
    """List every account with its balance. Example: ledger accounts --format csv"""
    obj = context(ctx, json_out)
    with handled(obj):
        from projections.queries import list_accounts

        use_format(obj.output, fmt, json_out)
        with read_conn(obj) as conn:
            rows = list_accounts(conn)
            lag = lag_fields(projection_lag(obj, conn, "balances"))
        docs: list[dict[str, Any]] = [
            {
                "account_id": r.account_id,
                "owner": r.owner,
                "currency": r.currency,
                "balance": money(r.balance, r.currency),
                "overdraft_limit": money(r.overdraft_limit, r.currency),
                "status": r.status,
                "revision": r.last_revision,
                **lag,
            }
            for r in rows
        ]
        obj.output.listing(f"{len(docs)} accounts", ACCOUNT_COLUMNS, docs)


VIOLATION_COLUMNS = tuple(
    Column(key, text=True) for key in ("table", "check", "account_id", "day", "detail", "message")
)


@app.command(rich_help_panel=PANEL)
def verify(
    ctx: typer.Context,
    stuck_after: Annotated[
        float,
        typer.Option(
            "--stuck-after", min=0, help="Report transfers in transit longer than this (seconds)."
        ),
    ] = 60.0,
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check every read model against the write model at its checkpoint (exit 5 on a violation).

    Events written after the checkpoint are lag, reported as such: not a violation."""
    obj = context(ctx, json_out)
    with handled(obj):
        import datetime as dt

        from projections.verify import check

        use_format(obj.output, fmt, json_out)

        fold = write_model_fold(obj)
        stuck_before = obj.settings.clock() - dt.timedelta(seconds=stuck_after)
        with read_conn(obj) as conn:
            found = check(conn, fold, stuck_before=stuck_before)
        found.violations.extend(_unfinished_transfers(fold, stuck_before))
        at = min(found.checkpoints.values(), default=0)
        violations = [{**v.__dict__, "message": str(v)} for v in found.violations]
        if obj.output.format != "table":
            document = {
                "ok": found.ok,
                "checkpoints": found.checkpoints,
                "lag_events": found.lag_events,
                "violations": violations,
            }
            obj.output.listing("Violations", VIOLATION_COLUMNS, violations, document=document)
        elif found.violations:
            for v in found.violations:
                obj.output.line(str(v))
        else:
            obj.output.line("verify: every invariant holds.")
        if found.lag_events:
            obj.output.note(
                f"note: the read models are {found.lag_events} events behind the store (checked "
                f"at position {at}); that is lag, not corruption: is the runner running?"
            )
        if found.violations:
            fail(
                f"verify found {len(found.violations)} violations at position {at}",
                ExitCode.CHECK_FAILED,
            )


def _unfinished_transfers(fold: WriteModelFold, before: dt.datetime) -> list[Violation]:
    """Transfers not final in the write model since before `before` that the read models
    cannot show (requested, never debited: nothing moved, but nothing finished them)."""
    from ledger.transfer_manager import unfinished_transfers
    from ledger.transfers.decider import TransferStatus
    from projections.verify import Violation

    store: Any = fold.store
    return [
        Violation(
            "transfer streams",
            "stuck",
            s.from_account,
            None,
            f"transfer {s.transfer_id} has been {s.status.value} since "
            f"{s.updated_at.isoformat() if s.updated_at else '?'}: is the runner (its process "
            "manager) running?",
        )
        for s in unfinished_transfers(store, before)
        if s.status is TransferStatus.REQUESTED
    ]
