"""Transfer commands: transfer, transfers, transfer-status; and the process manager's wiring."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.commands.accounts import AmountCommand
from cli.context import Context, context, make_ledger, read_conn
from cli.errors import fail, handled
from cli.options import DescOpt, FormatOpt, JsonOpt, WaitOpt, use_format
from cli.render import Column, money

if TYPE_CHECKING:
    from ledger.service import TransferOutcome
    from ledger.transfers.decider import TransferState

app = typer.Typer()

PANEL = "Transfers"


def _doc(outcome: TransferOutcome) -> dict[str, Any]:
    s = outcome.state
    return {
        **_state_doc(s, brief=True),
        "replayed": outcome.replayed,
        "from_balance": None if s.from_balance is None else money(s.from_balance, s.currency),
        "commit_position": outcome.commit_position,
    }


def _wait_until_final(obj: Context, transfer_id: str) -> TransferState:
    """Poll the transfer's stream until it is final (the process manager finishes it)."""
    import time

    from ledger.errors import WaitTimeoutError

    ledger = make_ledger(obj)
    deadline = time.monotonic() + obj.settings.wait_timeout
    delay = 0.02
    while True:
        state = ledger.transfer_state(transfer_id)
        if state.final:
            return state
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(
                f"transfer {transfer_id} is still {state.status.value} after "
                f"{obj.settings.wait_timeout:g}s; is the runner (its process manager) running?"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


@app.command(rich_help_panel=PANEL, cls=AmountCommand)
def transfer(
    ctx: typer.Context,
    from_account: Annotated[str, typer.Argument(metavar="FROM", help="Account debited.")],
    to_account: Annotated[str, typer.Argument(metavar="TO", help="Account credited.")],
    amount: Annotated[str, typer.Argument(help="Decimal amount in the accounts' currency.")],
    tx: Annotated[
        str | None,
        typer.Option("--tx", help="Transfer id (idempotency key, global); generated if absent."),
    ] = None,
    description: DescOpt = "",
    wait: WaitOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Move money between two open accounts of one currency; returns once it is final.

    Example: ledger transfer alice bob 25.00 --tx rent-2026-12"""
    import dataclasses

    from cli.commands.accounts import _refusal_hint, _transaction_id
    from ledger.errors import InsufficientFundsError, WaitTimeoutError

    obj = context(ctx, json_out)
    with handled(obj):
        # What needs no service is checked before a transfer id is named.
        from ledger.accounts.ids import check_existing_account_id
        from ledger.money import check_amount_syntax

        check_existing_account_id(from_account)
        check_existing_account_id(to_account)
        check_amount_syntax(amount)
    transfer_id = _transaction_id(obj, tx, "transfer id")
    with handled(obj, transfer_id):
        ledger = make_ledger(obj)
        try:
            outcome = ledger.transfer(from_account, to_account, amount, transfer_id, description)
        except InsufficientFundsError as exc:
            _refusal_hint(obj, from_account, exc)
            raise
        waited_out = None
        if wait:
            from projections.consistency import wait_for_position

            if not outcome.state.final:
                outcome = dataclasses.replace(outcome, state=_wait_until_final(obj, transfer_id))
                outcome = dataclasses.replace(
                    outcome, commit_position=outcome.state.posting_position
                )
            with read_conn(obj) as conn:
                if not wait_for_position(
                    conn, outcome.commit_position, timeout=obj.settings.wait_timeout
                ):
                    waited_out = WaitTimeoutError(
                        f"transfer {transfer_id} is {outcome.state.status.value} but the "
                        f"projections did not include it within {obj.settings.wait_timeout:g}s; "
                        "check `ledger projections status`"
                    )
        doc = _doc(outcome)
        if obj.output.json_mode:
            obj.output.json(doc)
        else:
            s = outcome.state
            again = " (already requested; nothing new was moved)" if outcome.replayed else ""
            obj.output.line(
                f"Transfer {transfer_id}: {doc['amount']} {s.currency} from {s.from_account} "
                f"to {s.to_account} is {s.status.value}{again}."
                + (
                    f" {s.from_account}: {doc['from_balance']} {s.currency}."
                    if s.from_balance
                    else ""
                )
            )
        if waited_out is not None:
            raise waited_out


def _state_doc(s: TransferState, *, brief: bool = False) -> dict[str, Any]:
    doc = {
        "transfer_id": s.transfer_id,
        "from": s.from_account,
        "to": s.to_account,
        "amount": money(s.amount, s.currency),
        "currency": s.currency,
        "state": s.status.value,
    }
    if brief:
        return doc
    return {
        **doc,
        "description": s.description,
        "reason": s.reason or None,
        "refunded": s.refunded,
        "requested_at": s.requested_at.isoformat() if s.requested_at else None,
        "updated_at": s.updated_at.isoformat() if s.updated_at else None,
    }


@app.command("transfer-status", rich_help_panel=PANEL)
def transfer_status(
    ctx: typer.Context,
    transfer_id: Annotated[str, typer.Argument(metavar="ID", help="The transfer id.")],
    json_out: JsonOpt = False,
) -> None:
    """One transfer as its own stream has it now (any state, rejected ones included)."""
    obj = context(ctx, json_out)
    with handled(obj):
        doc = _state_doc(make_ledger(obj).transfer_state(transfer_id))
        if obj.output.json_mode:
            obj.output.json(doc)
            return
        obj.output.table(
            f"Transfer {transfer_id}",
            [("field", "left"), ("value", "left")],
            [[k, "" if v is None else str(v)] for k, v in doc.items()],
        )


TRANSFER_COLUMNS = (
    Column("transfer_id", text=True),
    Column("from", text=True),
    Column("to", text=True),
    Column("amount", right=True),
    Column("currency"),
    Column("state"),
    Column("description", text=True, table=False),
    Column("debited_at", table=False),
    Column("updated_at"),
)


@app.command("transfers", rich_help_panel=PANEL)
def list_transfers(
    ctx: typer.Context,
    account: Annotated[
        str | None, typer.Argument(help="Only transfers from or to this account.")
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            help="requested, debited (money in transit), completed, failed (refunded) "
            "or rejected (nothing moved).",
        ),
    ] = None,
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Every transfer, in any state, from the transfers read model (newest first)."""
    obj = context(ctx, json_out)
    with handled(obj):
        from ledger.accounts.ids import check_account_id
        from projections.queries import list_transfers as query
        from projections.transfers import STATES

        use_format(obj.output, fmt, json_out)
        if account is not None:
            check_account_id(account)
        if state is not None and state not in STATES:
            fail(f"--state is one of {', '.join(STATES)}; not {state!r}")
        with read_conn(obj) as conn:
            rows = query(conn, account=account, state=state)
        docs = [
            {
                "transfer_id": r.transfer_id,
                "from": r.from_account,
                "to": r.to_account,
                "amount": money(r.amount, r.currency),
                "currency": r.currency,
                "state": r.state,
                "description": r.description,
                "reason": r.reason,
                "requested_at": r.requested_at.isoformat() if r.requested_at else None,
                "debited_at": r.debited_at.isoformat() if r.debited_at else None,
                "updated_at": r.updated_at.isoformat(),
            }
            for r in rows
        ]
        obj.output.listing("Transfers", TRANSFER_COLUMNS, docs)


def start_transfer_manager(
    eventstore_uri: str, database_url: str, clock: Any, stop: threading.Event
) -> threading.Thread:
    """The process manager on a thread of the runner's process: its own event store
    connection and its own checkpoint slot in PostgreSQL."""
    import getpass

    from ledger.eventstore import AccountEventStore
    from ledger.handler import CommandHandler
    from ledger.service import Ledger
    from ledger.transfer_manager import TransferManager
    from projections.checkpoints import SlotCheckpoint
    from projections.db import connect, migrate
    from projections.lease import lead
    from projections.names import TRANSFERS_SLOT

    def run(ended: threading.Event) -> None:
        store = AccountEventStore.connect(eventstore_uri)
        conn = connect(database_url)
        try:
            migrate(conn)
            ledger = Ledger(
                CommandHandler(store), clock=clock, actor=f"process-manager:{getpass.getuser()}"
            )
            checkpoint = SlotCheckpoint(conn, TRANSFERS_SLOT)
            TransferManager(ledger.transfers, store, checkpoint, clock=clock).follow(ended)
        finally:
            conn.close()
            store.close()

    # One process manager is active among the runners; the others stand by for its lease.
    thread = threading.Thread(
        target=lead, args=(database_url, TRANSFERS_SLOT, stop, run), name="transfer-manager"
    )
    thread.daemon = True
    thread.start()
    return thread
