"""The `ledger` command line (typer): parses input, wires the write and read sides, prints."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer

from cli.render import Output
from cli.settings import Settings
from ledger.errors import (
    InsufficientFundsError,
    InvalidInputError,
    LedgerError,
    WaitTimeoutError,
)

if TYPE_CHECKING:
    import psycopg

    from cli.stack import LocalStack
    from ledger.handler import Outcome
    from ledger.service import Ledger

EXIT_CODES = """Exit codes: 0 ok · 1 refused by a business rule · 2 invalid input or usage ·
3 a service unavailable · 4 --wait/--min-revision timed out (the write committed) ·
5 a check failed · 6 conflict retries exhausted (safe to retry with the same --tx) ·
70 internal error (details in LEDGER_HOME/logs/cli.log)"""

app = typer.Typer(
    name="ledger",
    help="An event-sourced banking ledger: commands on EventStoreDB, queries on PostgreSQL.\n\n"
    "Examples:  ledger open alice --owner 'Alice' --currency EUR · "
    "ledger deposit alice 100.00 --wait · ledger balance alice · ledger statement alice",
    epilog=EXIT_CODES,
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
projections_app = typer.Typer(
    help="Read-model operations: status, run, rebuild, replay parked events.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
)
app.add_typer(projections_app, name="projections", rich_help_panel="Projections")

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
WaitOpt = Annotated[
    bool, typer.Option("--wait", help="Wait until every projection includes this write.")
]
TxOpt = Annotated[
    str | None,
    typer.Option("--tx", help="Client transaction id (idempotency key); generated if absent."),
]
DescOpt = Annotated[str, typer.Option("--description", "-d", help="Shown on the statement.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@dataclass
class Context:
    """What every command shares: settings, output, flags."""

    settings: Settings
    output: Output
    debug: bool


def _context(ctx: typer.Context, json_mode: bool = False) -> Context:
    obj: Context = ctx.obj
    obj.output.json_mode = json_mode
    return obj


@app.callback()
def main_options(
    ctx: typer.Context,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    now: Annotated[
        str | None, typer.Option("--now", hidden=True, help="Fix the clock (ISO time).")
    ] = None,
) -> None:
    """Global options."""
    output = Output(color=not no_color)
    try:
        settings = Settings(now=cast(Any, now)) if now else Settings()
    except Exception as exc:
        output.error(f"invalid configuration: {str(exc).splitlines()[0]}; check LEDGER_* variables")
        raise typer.Exit(2) from None
    if (settings.eventstore_uri is None) != (settings.database_url is None):
        output.error(
            "set both LEDGER_EVENTSTORE_URI and LEDGER_DATABASE_URL (external services), "
            "or neither (the local stack)"
        )
        raise typer.Exit(2)
    # Library warnings (a best-effort snapshot read that failed, say) are noise on a terminal;
    # the one-sentence error says what matters. --debug shows them.
    logging.getLogger("ledger").setLevel(logging.DEBUG if debug else logging.ERROR)
    ctx.obj = Context(settings, output, debug)


# ----- error handling


def _log_file(settings: Settings) -> Path:
    if not settings.home.exists():
        settings.home.mkdir(parents=True)
        settings.home.chmod(0o700)
    path = settings.home / "logs" / "cli.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _log_exception(settings: Settings) -> Path:
    """Write the current exception's traceback to cli.log with a handler of its own: the
    root logger may already be configured elsewhere (`projections run`, a test runner)."""
    path = _log_file(settings)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("ledger.cli")
    logger.addHandler(handler)
    try:
        logger.error("unexpected error in `ledger %s`", " ".join(sys.argv[1:]), exc_info=True)
    finally:
        logger.removeHandler(handler)
        handler.close()
    return path


def _how_to_start(obj: Context) -> str:
    """What to do about an unavailable service, for the configuration in use."""
    if obj.settings.embedded:
        return (
            f"start the local stack with `ledger up` (it lives in {obj.settings.home}); "
            "`ledger status` and `ledger logs SERVICE` show what is wrong"
        )
    return (
        "check that the services named by LEDGER_EVENTSTORE_URI and LEDGER_DATABASE_URL are "
        "running (with the compose file: `docker compose up -d`)"
    )


@contextlib.contextmanager
def handled(obj: Context, transaction_id: str | None = None) -> Iterator[None]:
    """Map failures to one sentence and an exit code; log unexpected ones."""
    try:
        yield
    except typer.Exit:
        raise
    except LedgerError as exc:
        message = str(exc)
        if exc.exit_code == 3:
            message += f"; {_how_to_start(obj)}"
        obj.output.error(message)
        if transaction_id and exc.exit_code in (3, 4, 6):
            obj.output.note(
                f"transaction id: {transaction_id} (retry with --tx {transaction_id}; "
                "it will not be posted twice)"
            )
        if obj.debug:
            traceback.print_exc()
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        obj.output.error("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        try:
            path = _log_exception(obj.settings)
            where = f"details in {path}"
        except OSError:
            where = "details could not be logged"
        obj.output.error(f"internal error ({type(exc).__name__}); {where}")
        if transaction_id:
            obj.output.note(f"transaction id: {transaction_id}")
        if obj.debug:
            traceback.print_exc()
        raise typer.Exit(70) from None


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop with a message on stderr and an exit code (1 refused, 2 invalid, 5 check failed)."""
    from ledger.errors import BusinessRuleError, CheckFailedError

    kinds: dict[int, type[LedgerError]] = {
        1: BusinessRuleError,
        2: InvalidInputError,
        5: CheckFailedError,
    }
    raise kinds[code](message)


# ----- wiring (heavy imports happen here, only when a command needs them)


def _stack(obj: Context) -> LocalStack:
    from cli.stack import LocalStack

    return LocalStack(obj.settings.home)


def _ensure(obj: Context, services: tuple[str, ...]) -> None:
    if not obj.settings.embedded:
        return
    stack = _stack(obj)
    if all(stack.running(s) for s in services):
        return
    obj.output.note(f"starting the local stack in {obj.settings.home} …")
    stack.up(services, note=obj.output.note)


def eventstore_uri(obj: Context) -> str:
    """The event store to use, starting the local stack if needed."""
    if obj.settings.eventstore_uri:
        return obj.settings.eventstore_uri
    _ensure(obj, ("eventstore", "postgres", "runner"))
    return _stack(obj).eventstore_uri()


def database_url(obj: Context) -> str:
    """The read-side database to use, starting the local PostgreSQL if needed."""
    if obj.settings.database_url:
        return obj.settings.database_url
    _ensure(obj, ("postgres",))
    return _stack(obj).database_url()


def read_conn(obj: Context) -> psycopg.Connection[Any]:
    """A connection to the read models (schema migrated)."""
    from projections.db import connect, migrate

    conn = connect(database_url(obj))
    migrate(conn)
    return conn


def make_ledger(obj: Context) -> Ledger:
    """The write side's API over the configured event store."""
    import getpass

    from ledger.eventstore import AccountEventStore
    from ledger.handler import CommandHandler
    from ledger.service import Ledger

    store = AccountEventStore.connect(eventstore_uri(obj))
    return Ledger(CommandHandler(store), clock=obj.settings.clock, actor=f"cli:{getpass.getuser()}")


def check_account_id(account_id: str) -> None:
    """Validate an account id before any I/O."""
    from ledger.accounts.ids import check_account_id as check

    check(account_id)


def money(minor: int, currency: str) -> str:
    """Minor units as a decimal string with the currency's decimals."""
    from ledger.money import format_minor_units

    return format_minor_units(minor, currency)


def as_decimal(text: str, currency: str) -> str:
    """A user's (already accepted) amount with the currency's decimals: "70" -> "70.00"."""
    from ledger.money import to_minor_units

    return money(to_minor_units(text, currency, allow_zero=True), currency)


# ----- write commands


def _write_doc(outcome: Outcome, with_tx: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {"account_id": outcome.account_id}
    if with_tx:
        doc["transaction_id"] = outcome.transaction_id
    doc.update(revision=outcome.revision, commit_position=outcome.commit_position)
    if with_tx:
        doc["balance"] = money(outcome.balance, outcome.currency)
    doc["currency"] = outcome.currency
    doc["replayed"] = outcome.replayed
    return doc


def _after_write(
    obj: Context, outcome: Outcome, sentence: str, wait: bool, with_tx: bool = True
) -> None:
    doc = _write_doc(outcome, with_tx)
    waited_out = False
    if wait:
        from projections.consistency import wait_for_position

        with read_conn(obj) as conn:
            waited_out = not wait_for_position(
                conn, outcome.commit_position, timeout=obj.settings.wait_timeout
            )
    if obj.output.json_mode:
        obj.output.json(doc)
    else:
        obj.output.line(sentence)
    if waited_out:
        raise WaitTimeoutError(
            f"the write committed (revision {outcome.revision}) but the projections did not "
            f"include it within {obj.settings.wait_timeout:g}s; check `ledger projections status`"
        )


def _refusal_hint(obj: Context, account_id: str, exc: InsufficientFundsError) -> None:
    c = exc.currency
    obj.output.note(
        f"to unblock: `ledger deposit {account_id} {money(exc.shortfall, c)}` or "
        f"`ledger set-overdraft {account_id} {money(exc.overdraft_limit + exc.shortfall, c)}`"
    )


@app.command("open", rich_help_panel="Accounts")
def open_account(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account id: a-z, 0-9, '-' and '_'.")],
    owner: Annotated[str, typer.Option("--owner", help="The account holder's name.")],
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 code, e.g. EUR.")],
    overdraft_limit: Annotated[
        str, typer.Option("--overdraft-limit", help="How far below zero it may go.")
    ] = "0",
    json_out: JsonOpt = False,
) -> None:
    """Open an account. Example: ledger open alice --owner 'Alice' --currency EUR"""
    obj = _context(ctx, json_out)
    with handled(obj):
        check_account_id(account)
        outcome = make_ledger(obj).open_account(account, owner, currency, overdraft_limit)
        what = "was already open" if outcome.replayed else "opened"
        _after_write(obj, outcome, f"Account {account} ({currency}) {what}.", False, False)


def _posting(
    ctx: typer.Context,
    kind: str,
    account: str,
    amount: str,
    tx: str | None,
    description: str,
    wait: bool,
    json_out: bool,
) -> None:
    from ledger.service import new_transaction_id

    obj = _context(ctx, json_out)
    transaction_id = tx if tx is not None else new_transaction_id()
    if tx is None:
        obj.output.note(f"transaction id: {transaction_id}")
    with handled(obj, transaction_id):
        check_account_id(account)
        ledger = make_ledger(obj)
        try:
            if kind == "deposit":
                outcome = ledger.deposit(account, amount, transaction_id, description)
            else:
                outcome = ledger.withdraw(account, amount, transaction_id, description)
        except InsufficientFundsError as exc:
            _refusal_hint(obj, account, exc)
            raise
        c = outcome.currency
        verb = "Deposited" if kind == "deposit" else "Withdrew"
        sentence = (
            f"Transaction {transaction_id} was already posted; nothing new was written. "
            f"Balance after it: {money(outcome.balance, c)} {c}."
            if outcome.replayed
            else f"{verb} {as_decimal(amount, c)} {c} "
            f"({'to' if kind == 'deposit' else 'from'} {account}, transaction {transaction_id}). "
            f"Balance: {money(outcome.balance, c)} {c}."
        )
        _after_write(obj, outcome, sentence, wait)


@app.command(rich_help_panel="Accounts")
def deposit(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account id.")],
    amount: Annotated[str, typer.Argument(help="Decimal amount, e.g. 70.00.")],
    tx: TxOpt = None,
    description: DescOpt = "",
    wait: WaitOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Deposit money. Example: ledger deposit alice 70.00 --tx salary-2026-11"""
    _posting(ctx, "deposit", account, amount, tx, description, wait, json_out)


@app.command(rich_help_panel="Accounts")
def withdraw(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account id.")],
    amount: Annotated[str, typer.Argument(help="Decimal amount, e.g. 20.50.")],
    tx: TxOpt = None,
    description: DescOpt = "",
    wait: WaitOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Withdraw money (never below minus the overdraft limit). Example: ledger withdraw alice 20"""
    _posting(ctx, "withdraw", account, amount, tx, description, wait, json_out)


@app.command(rich_help_panel="Accounts")
def reverse(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account id.")],
    reverses: Annotated[str, typer.Argument(help="Transaction id of the posting to reverse.")],
    tx: TxOpt = None,
    wait: WaitOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Reverse an earlier deposit or withdrawal, once. Example: ledger reverse alice salary-11"""
    from ledger.service import new_transaction_id

    obj = _context(ctx, json_out)
    transaction_id = tx if tx is not None else new_transaction_id()
    if tx is None:
        obj.output.note(f"transaction id: {transaction_id}")
    with handled(obj, transaction_id):
        check_account_id(account)
        outcome = make_ledger(obj).reverse(account, reverses, transaction_id)
        c = outcome.currency
        sentence = (
            f"Reversal {transaction_id} was already posted; nothing new was written."
            if outcome.replayed
            else f"Reversed {reverses} on {account}. Balance: {money(outcome.balance, c)} {c}."
        )
        _after_write(obj, outcome, sentence, wait)


@app.command("set-overdraft", rich_help_panel="Accounts")
def set_overdraft(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account id.")],
    amount: Annotated[str, typer.Argument(help="The new limit, e.g. 100.00 (0 for none).")],
    json_out: JsonOpt = False,
) -> None:
    """Change the overdraft limit. Example: ledger set-overdraft alice 100.00"""
    obj = _context(ctx, json_out)
    with handled(obj):
        check_account_id(account)
        outcome = make_ledger(obj).set_overdraft_limit(account, amount)
        _after_write(
            obj,
            outcome,
            f"Overdraft limit of {account} is {as_decimal(amount, outcome.currency)} "
            f"{outcome.currency}.",
            False,
            False,
        )


def _confirm(obj: Context, question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} Not confirmed: pass --yes (stdin is not a terminal)", 2)
    if not typer.confirm(question, default=False):
        fail("cancelled; nothing was changed", 1)


@app.command("close", rich_help_panel="Accounts")
def close_account(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account id (its balance must be zero).")],
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Close an account with a zero balance. Example: ledger close alice --yes"""
    obj = _context(ctx, json_out)
    with handled(obj):
        check_account_id(account)
        _confirm(obj, f"Close account {account}? It will accept nothing afterwards.", yes)
        outcome = make_ledger(obj).close_account(account)
        what = "was already closed" if outcome.replayed else "closed"
        _after_write(obj, outcome, f"Account {account} {what}.", False, False)


# ----- queries


def _parse_as_of(value: str) -> tuple[dt.date | None, int | None]:
    if value.isascii() and value.isdigit():
        return None, int(value)
    try:
        return dt.date.fromisoformat(value), None
    except ValueError:
        fail(f"--as-of takes a date (2026-11-26) or a commit position (digits), not {value!r}")


def _lag_note(obj: Context, conn: psycopg.Connection[Any], projection: str) -> None:
    from projections.status import read_status

    for status in read_status(conn):
        if status.projection == projection and (status.lag_events or status.lag_capped):
            more = "+" if status.lag_capped else ""
            when = status.updated_at.isoformat(timespec="seconds") if status.updated_at else "?"
            obj.output.note(
                f"note: the {projection} projection is {status.lag_events}{more} events "
                f"({status.lag_seconds:.1f}s) behind, as of {when}; use --consistent for the "
                "write model"
            )


@app.command(rich_help_panel="Reports")
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
        str | None, typer.Option("--as-of", help="A date (end of that UTC day) or a position.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a balance (from the projection unless --consistent). Example: ledger balance alice"""
    obj = _context(ctx, json_out)
    with handled(obj):
        check_account_id(account)
        if consistent and min_revision is not None:
            fail("use either --consistent or --min-revision, not both")
        day, position = _parse_as_of(as_of) if as_of else (None, None)
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
            }
            _show_balance(obj, doc)
            return
        from projections.consistency import wait_for_revision
        from projections.queries import balance_as_of, get_balance

        with read_conn(obj) as conn:
            timed_out = False
            if min_revision is not None:
                timed_out = not wait_for_revision(
                    conn, account, min_revision, timeout=obj.settings.wait_timeout
                )
            row = get_balance(conn, account)
            if row is None:
                from ledger.errors import AccountNotFoundError

                if timed_out:
                    raise WaitTimeoutError(f"account {account} has not reached the projection yet")
                raise AccountNotFoundError(account)
            amount, revision = row.balance, row.last_revision
            if day is not None or position is not None:
                amount, posted = balance_as_of(conn, account, day=day, position=position)
                revision = posted if posted is not None else -1
            doc = {
                "account_id": account,
                "balance": money(amount, row.currency),
                "currency": row.currency,
                "revision": revision,
                "consistent": False,
            }
            if as_of:
                doc["as_of"] = as_of
            _show_balance(obj, doc)
            if not timed_out:
                _lag_note(obj, conn, "balances")
        if timed_out:
            raise WaitTimeoutError(
                f"the balance projection did not reach revision {min_revision} of {account} "
                f"within {obj.settings.wait_timeout:g}s"
            )


def _show_balance(obj: Context, doc: dict[str, Any]) -> None:
    if obj.output.json_mode:
        obj.output.json(doc)
    else:
        where = "write model" if doc["consistent"] else "projection"
        when = f" as of {doc['as_of']}" if "as_of" in doc else ""
        obj.output.line(
            f"{doc['account_id']}: {doc['balance']} {doc['currency']}{when} "
            f"(revision {doc['revision']}, {where})"
        )


def _parse_day(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        fail(f"{name} takes an ISO date such as 2026-11-26, not {value!r}")


@app.command(rich_help_panel="Reports")
def statement(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account id.")],
    start: Annotated[
        str | None, typer.Option("--from", help="First day, inclusive (ISO date, UTC).")
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="Last day, inclusive (ISO date, UTC); today with --from alone."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Keep the most recent N postings.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    consistent: Annotated[
        bool, typer.Option("--consistent", help="Read the write model instead.")
    ] = False,
    min_revision: Annotated[
        int | None, typer.Option("--min-revision", min=0, help="Wait for this revision first.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Postings of a period with opening and closing balances. Example: ledger statement alice"""
    if json_out:
        fmt = "json"
    obj = _context(ctx, fmt == "json")
    with handled(obj):
        check_account_id(account)
        if fmt not in ("table", "json", "csv"):
            fail(f"--format is table, json or csv, not {fmt!r}")
        if consistent and min_revision is not None:
            fail("use either --consistent or --min-revision, not both")
        first, last = _parse_day(start, "--from"), _parse_day(end, "--to")
        if first and last and first > last:
            fail(f"--from {first} is after --to {last}")
        if first is not None and last is None:
            # The period is resolved against "today" (LEDGER_NOW / --now fixes it) and echoed.
            last = max(first, obj.settings.clock().date())
        timed_out = False
        if consistent:
            st = _consistent_statement(obj, account, first, last, limit)
        else:
            st, timed_out = _projected_statement(obj, account, first, last, limit, min_revision)
        _show_statement(obj, st, fmt, first is not None or last is not None)
        if timed_out:
            # Like `balance`: what the projection has is on stdout, and the exit code says
            # that it may not include the awaited revision yet.
            raise WaitTimeoutError(
                f"the projections did not reach revision {min_revision} of {account} "
                f"within {obj.settings.wait_timeout:g}s; what it had is shown"
            )


def _projected_statement(
    obj: Context,
    account: str,
    first: dt.date | None,
    last: dt.date | None,
    limit: int | None,
    min_revision: int | None,
) -> tuple[Any, bool]:
    from ledger.errors import AccountNotFoundError
    from projections.consistency import wait_for_revision
    from projections.queries import get_balance
    from projections.queries import statement as query

    with read_conn(obj) as conn:
        timed_out = min_revision is not None and not wait_for_revision(
            conn, account, min_revision, timeout=obj.settings.wait_timeout
        )
        row = get_balance(conn, account)
        if row is None:
            if timed_out:
                raise WaitTimeoutError(f"account {account} has not reached the projection yet")
            raise AccountNotFoundError(account)
        return query(conn, row, start=first, end=last, limit=limit), timed_out


def _consistent_statement(
    obj: Context, account: str, first: dt.date | None, last: dt.date | None, limit: int | None
) -> Any:
    from ledger.accounts.decider import Status
    from ledger.accounts.events import Posting
    from ledger.errors import AccountNotFoundError
    from ledger.writemodel import fold_account
    from projections.queries import BalanceRow, PostingRow, Statement

    ledger = make_ledger(obj)
    store = ledger.handler.store
    state, _ = fold_account(store, account)
    if state.status is Status.NEW:
        raise AccountNotFoundError(account)
    lines, opening, closing = [], 0, 0
    for stored in store.read(account):
        e = stored.event
        if not isinstance(e, Posting):
            continue
        day = e.occurred_at.astimezone(dt.UTC).date()
        if first and day < first:
            opening = e.balance_after
        if last is None or day <= last:
            closing = e.balance_after
        if (first is None or day >= first) and (last is None or day <= last):
            lines.append(
                PostingRow(
                    account,
                    stored.revision,
                    stored.commit_position,
                    e.transaction_id,
                    str(e.kind),
                    e.amount,
                    e.balance_after,
                    e.description,
                    e.occurred_at,
                )
            )
    if first and not any(p for p in lines) and closing == 0:
        closing = opening
    if limit and len(lines) > limit:
        lines = lines[-limit:]
        opening = lines[0].balance_before  # as the projection's statement
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
    return Statement(row, first, last, opening, closing, lines)


def _show_statement(obj: Context, st: Any, fmt: str, period: bool) -> None:
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
                }
            )
        else:
            obj.output.json(postings)
        return
    columns = [
        "revision",
        "occurred_at",
        "kind",
        "amount",
        "balance_after",
        "transaction_id",
        "description",
    ]
    rows = [[str(p[k]) for k in columns] for p in postings]
    if fmt == "table":
        for row, posting in zip(rows, st.postings, strict=True):
            row[1] = posting.occurred_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if fmt == "csv":
        obj.output.csv(columns, rows, text_columns={5, 6})
        return
    period_text = f" from {st.start or 'the start'} to {st.end or 'today'}" if period else ""
    obj.output.table(
        f"Statement of {st.account.account_id} ({c}){period_text} — opening "
        f"{money(st.opening_balance, c)}, closing {money(st.closing_balance, c)}",
        [
            ("rev", "right"),
            ("when (UTC)", "left"),
            ("kind", "left"),
            ("amount", "right"),
            ("balance", "right"),
            ("transaction", "left"),
            ("description", "left"),
        ],
        rows,
    )


@app.command(rich_help_panel="Reports")
def accounts(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List every account with its balance. Example: ledger accounts --json"""
    obj = _context(ctx, json_out)
    with handled(obj):
        from projections.queries import list_accounts

        with read_conn(obj) as conn:
            rows = list_accounts(conn)
        docs: list[dict[str, Any]] = [
            {
                "account_id": r.account_id,
                "owner": r.owner,
                "currency": r.currency,
                "balance": money(r.balance, r.currency),
                "overdraft_limit": money(r.overdraft_limit, r.currency),
                "status": r.status,
                "revision": r.last_revision,
            }
            for r in rows
        ]
        if obj.output.json_mode:
            obj.output.json(docs)
            return
        obj.output.table(
            f"{len(docs)} accounts",
            [
                ("account", "left"),
                ("owner", "left"),
                ("balance", "right"),
                ("cur", "left"),
                ("overdraft", "right"),
                ("status", "left"),
            ],
            [
                [
                    d["account_id"],
                    d["owner"],
                    d["balance"],
                    d["currency"],
                    d["overdraft_limit"],
                    d["status"],
                ]
                for d in docs
            ],
        )


def _fold(obj: Context) -> Callable[[str, int | None], tuple[int, list[int]] | None]:
    from ledger.writemodel import write_model_fold

    return write_model_fold(make_ledger(obj).handler.store)


@app.command(rich_help_panel="Reports")
def verify(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Check the read models against themselves and the write model (exit 5 on a violation)."""
    obj = _context(ctx, json_out)
    with handled(obj):
        from projections.verify import verify as run_verify

        fold = _fold(obj)
        with read_conn(obj) as conn:
            violations = run_verify(conn, fold)
        if obj.output.json_mode:
            obj.output.json({"ok": not violations, "violations": [v.__dict__ for v in violations]})
        elif violations:
            obj.output.table(
                f"{len(violations)} violations",
                [("check", "left"), ("account", "left"), ("detail", "left")],
                [[v.check, v.account_id or "", v.detail] for v in violations],
            )
        else:
            obj.output.line("verify: every invariant holds.")
        if violations:
            fail(f"verify found {len(violations)} violations", 5)


# ----- projections


@projections_app.command("status")
def projections_status(
    ctx: typer.Context,
    health: Annotated[
        bool, typer.Option("--health", help="Exit 5 when lag is over --max-lag.")
    ] = False,
    max_lag: Annotated[int, typer.Option("--max-lag", min=0, help="Events (with --health).")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """Checkpoint, head, lag in events and seconds, caught-up, parked — from PostgreSQL only."""
    obj = _context(ctx, json_out)
    with handled(obj):
        from projections.status import read_status

        with read_conn(obj) as conn:
            statuses = read_status(conn)
        docs = [
            {**s.__dict__, "updated_at": s.updated_at.isoformat() if s.updated_at else None}
            for s in statuses
        ]
        if obj.output.json_mode:
            obj.output.json(docs)
        else:
            obj.output.table(
                "Projections",
                [
                    ("projection", "left"),
                    ("checkpoint", "right"),
                    ("head", "right"),
                    ("lag events", "right"),
                    ("lag s", "right"),
                    ("caught up", "left"),
                    ("parked", "right"),
                ],
                [
                    [
                        s.projection,
                        str(s.checkpoint),
                        str(s.head_position),
                        f"{s.lag_events}{'+' if s.lag_capped else ''}",
                        f"{s.lag_seconds:.1f}",
                        "yes" if s.caught_up else "no",
                        str(s.parked),
                    ]
                    for s in statuses
                ],
            )
        if health and not all(s.healthy(max_lag) for s in statuses):
            fail(f"unhealthy: a projection lags more than {max_lag} events or has parked events", 5)


@projections_app.command("run")
def projections_run(ctx: typer.Context) -> None:
    """Run the projection runner in the foreground until SIGTERM/SIGINT."""
    import signal
    import threading

    obj = _context(ctx)
    with handled(obj):
        from projections.runner import Runner

        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if obj.settings.embedded:
            stack = _stack(obj)
            esdb, db = stack.eventstore_uri(), stack.database_url()
        else:
            esdb, db = eventstore_uri(obj), database_url(obj)
        Runner(db, esdb, stop=stop).run()


@projections_app.command("rebuild")
def projections_rebuild(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="balances, statements or daily_totals.")
    ] = None,
    discard: Annotated[
        bool, typer.Option("--discard", help="Drop an interrupted rebuild first.")
    ] = False,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Rebuild read models blue/green: queries keep answering; verified before the swap."""
    obj = _context(ctx, json_out)
    with handled(obj):
        from projections.applier import PROJECTIONS

        if name is not None and name not in PROJECTIONS:
            fail(f"unknown projection {name!r}; choose from {', '.join(PROJECTIONS)}")
        names = [name] if name else list(PROJECTIONS)
        _confirm(obj, f"Rebuild {', '.join(names)} from the start of the log?", yes)
        report = _rebuild(obj, names, discard)
        doc = {
            "projections": report.projections,
            "events": report.events,
            "seconds": round(report.seconds, 3),
            "events_per_s": round(report.events_per_s, 1),
            "swapped_at": report.swapped_at,
            "resumed": report.resumed,
            "differences_from_live": report.differences,
        }
        if obj.output.json_mode:
            obj.output.json(doc)
        else:
            diffs = ", ".join(f"{t}: {n}" for t, n in report.differences.items())
            obj.output.line(
                f"Rebuilt {', '.join(names)}: {report.events} events in {report.seconds:.1f}s "
                f"({report.events_per_s:,.0f}/s), verified and swapped in at position "
                f"{report.swapped_at}. Rows that differed from the old tables: {diffs}."
            )


def _rebuild(obj: Context, names: list[str], discard: bool) -> Any:
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from projections.rebuild import rebuild
    from projections.runner import Progress as RunnerProgress

    fold = _fold(obj)
    esdb, db = eventstore_uri(obj), database_url(obj)
    head = make_ledger(obj).handler.store.commit_position() or 1
    show = sys.stderr.isatty() and not obj.output.json_mode
    with Progress(
        TextColumn("rebuilding"),
        BarColumn(),
        TextColumn("{task.fields[events]} events · {task.fields[rate]}/s"),
        TimeRemainingColumn(),
        console=obj.output.err,
        disable=not show,
    ) as bar:
        task = bar.add_task("rebuild", total=head, events=0, rate=0)

        def progress(p: RunnerProgress) -> None:
            import time

            elapsed = max(time.monotonic() - p.started, 1e-6)
            # Positions are byte offsets in the log, so their fraction is a fair ETA basis.
            bar.update(
                task,
                completed=min(p.position, head),
                events=p.events,
                rate=f"{p.events / elapsed:,.0f}",
            )

        report = rebuild(
            db, esdb, fold, projections=names, discard_previous=discard, on_progress=progress
        )
    if not show:
        obj.output.note(f"rebuild: {report.events} events at {report.events_per_s:,.0f}/s")
    return report


@projections_app.command("replay-parked")
def projections_replay_parked(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Argument(help="Only this account.")] = None,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Apply parked events again, in order, after a fix; the account then flows again."""
    obj = _context(ctx, json_out)
    with handled(obj):
        from projections.parked import list_parked, replay_parked

        if account is not None:
            check_account_id(account)
        with read_conn(obj) as conn:
            parked = list_parked(conn, account)
            if not parked:
                obj.output.note("nothing is parked")
                if obj.output.json_mode:
                    obj.output.json({"replayed": 0, "still_parked": 0})
                return
            _confirm(obj, f"Replay {len(parked)} parked events?", yes)
            replay_parked(conn, account)
            still = list_parked(conn, account)
        if obj.output.json_mode:
            obj.output.json({"replayed": len(parked) - len(still), "still_parked": len(still)})
        else:
            obj.output.line(f"Replayed parked events; {len(still)} are still parked.")
        if still:
            fail(f"{len(still)} events are still parked (see `ledger projections status`)", 5)


# ----- local stack


@app.command(rich_help_panel="Local stack")
def up(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Start the local stack (esdblite, PostgreSQL, projection runner) — idempotent."""
    obj = _context(ctx, json_out)
    with handled(obj):
        if not obj.settings.embedded:
            fail("external services are configured (LEDGER_EVENTSTORE_URI); nothing to start", 2)
        stack = _stack(obj)
        started = stack.up(note=obj.output.note)
        if obj.output.json_mode:
            obj.output.json({"started": started, "services": stack.as_json()})
        else:
            obj.output.line(
                f"Started {', '.join(started)}." if started else "The local stack is already up."
            )


@app.command(rich_help_panel="Local stack")
def down(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Stop the local stack cleanly; data is kept."""
    obj = _context(ctx, json_out)
    with handled(obj):
        stack = _stack(obj)
        stopped = stack.down()
        if obj.output.json_mode:
            obj.output.json({"stopped": stopped})
        else:
            obj.output.line(f"Stopped {', '.join(stopped)}." if stopped else "Nothing was running.")


@app.command("status", rich_help_panel="Local stack")
def stack_status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Each service and the projection lag; exits 3 unless every service is healthy."""
    obj = _context(ctx, json_out)
    with handled(obj):
        stack = _stack(obj)
        services: list[dict[str, Any]] = stack.as_json()
        lag: list[dict[str, Any]] = []
        if stack.running("postgres"):
            from projections.db import connect
            from projections.status import read_status

            with contextlib.suppress(LedgerError), connect(stack.database_url()) as conn:
                lag = [
                    {
                        "projection": s.projection,
                        "lag_events": s.lag_events,
                        "caught_up": s.caught_up,
                        "parked": s.parked,
                    }
                    for s in read_status(conn)
                ]
        if obj.output.json_mode:
            obj.output.json(
                {"home": str(obj.settings.home), "services": services, "projections": lag}
            )
        else:
            obj.output.table(
                f"Local stack in {obj.settings.home}",
                [
                    ("service", "left"),
                    ("state", "left"),
                    ("pid", "right"),
                    ("address", "left"),
                    ("detail", "left"),
                ],
                [
                    [s["name"], s["state"], str(s["pid"] or ""), s["address"] or "", s["detail"]]
                    for s in services
                ],
            )
            for p in lag:
                obj.output.line(
                    f"{p['projection']}: lag {p['lag_events']} events, "
                    f"{'caught up' if p['caught_up'] else 'catching up'}, {p['parked']} parked"
                )
        if any(s["state"] != "running" for s in services):
            raise typer.Exit(3)


@app.command(rich_help_panel="Local stack")
def logs(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="eventstore, postgres or runner.")] = "runner",
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=1)] = 40,
) -> None:
    """Show a service's log (the last lines; -f follows it)."""
    import time

    from cli.stack import SERVICES

    obj = _context(ctx)
    with handled(obj):
        if service not in SERVICES:
            fail(f"unknown service {service!r}; choose from {', '.join(SERVICES)}")
        stack = _stack(obj)
        if not follow:
            sys.stdout.write(stack.log_tail(service, lines) + "\n")
            return
        from ledger.errors import ServiceUnavailableError

        path = stack.log_file(service)
        try:
            f = open(path, errors="replace")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            raise ServiceUnavailableError(f"{service} has no log yet ({path})") from None
        with f:
            # The tail and the lines after it come from one open file: none is lost between.
            tail = f.read().splitlines()[-lines:]
            sys.stdout.write("\n".join(tail) + "\n")
            sys.stdout.flush()
            while True:
                chunk = f.read()
                if chunk:
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
                else:
                    time.sleep(0.2)


@app.command(rich_help_panel="Local stack")
def demo(ctx: typer.Context) -> None:
    """A narrated tour on the local stack: open, deposit, refusals, idempotency, reversal,
    balances, statement, a projection rebuild with its progress bar, verify."""
    from cli.demo import run_demo

    obj = _context(ctx)
    with handled(obj):
        run_demo(obj, ctx)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
