"""Account commands: open, deposit, withdraw, reverse, set-overdraft, close."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperOption

from cli.context import Context, context, make_ledger, read_conn
from cli.errors import confirm, handled
from cli.options import DescOpt, JsonOpt, TxOpt, WaitOpt, YesOpt
from cli.render import as_decimal, money
from ledger.errors import InsufficientFundsError, WaitTimeoutError

if TYPE_CHECKING:
    from ledger.handler import Outcome

app = typer.Typer()

PANEL = "Accounts"


class AmountCommand(TyperCommand):
    """A command whose amount may be typed negative: "-5" reaches the amount rule (which says
    amounts are positive) instead of being read as an unknown option; a real unknown option
    ("--bogus") is still one."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        takes_value = {
            name
            for param in self.get_params(ctx)
            if isinstance(param, TyperOption) and not param.is_flag and not param.count
            for name in param.opts
        }
        return super().parse_args(ctx, _negative_numbers_as_arguments(args, takes_value))


def _negative_numbers_as_arguments(args: list[str], takes_value: set[str]) -> list[str]:
    """The arguments with each negative number that is no option's value moved after "--"
    (the amount is a command's last argument, so its place among them is kept)."""
    from ledger.money import is_signed_number

    if "--" in args:
        return args
    kept: list[str] = []
    moved: list[str] = []
    at = 0
    while at < len(args):
        if args[at] in takes_value:
            kept += args[at : at + 2]
            at += 2
            continue
        (moved if args[at].startswith("-") and is_signed_number(args[at]) else kept).append(
            args[at]
        )
        at += 1
    return [*kept, "--", *moved] if moved else args


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


def _transaction_id(obj: Context, tx: str | None, what: str = "transaction id") -> str:
    """The client's transaction id, or a new one that is shown so that a retry can reuse it.

    Called once the input has passed the checks that need no I/O: an input error attempts
    nothing, so it has no transaction to name."""
    from ledger.service import new_transaction_id

    if tx is not None:
        return tx
    transaction_id = new_transaction_id()
    obj.output.note(f"{what}: {transaction_id}")
    return transaction_id


@app.command("open", rich_help_panel=PANEL)
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
    obj = context(ctx, json_out)
    with handled(obj):
        from ledger.accounts.ids import check_account_id
        from ledger.money import currency_code

        check_account_id(account)
        currency = currency_code(currency)
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
    obj = context(ctx, json_out)
    with handled(obj):
        from ledger.accounts.ids import check_existing_account_id
        from ledger.money import check_amount_syntax

        check_existing_account_id(account)
        check_amount_syntax(amount)
    transaction_id = _transaction_id(obj, tx)
    with handled(obj, transaction_id):
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


@app.command(rich_help_panel=PANEL, cls=AmountCommand)
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


@app.command(rich_help_panel=PANEL, cls=AmountCommand)
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


@app.command(rich_help_panel=PANEL)
def reverse(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account id.")],
    reverses: Annotated[str, typer.Argument(help="Transaction id of the posting to reverse.")],
    tx: TxOpt = None,
    description: Annotated[
        str | None,
        typer.Option(
            "--description", "-d", help="Shown on the statement [default: reversal of TX]."
        ),
    ] = None,
    wait: WaitOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Reverse an earlier deposit or withdrawal, once. Example: ledger reverse alice salary-11"""
    obj = context(ctx, json_out)
    with handled(obj):
        from ledger.accounts.ids import check_existing_account_id, check_transaction_id

        check_existing_account_id(account)
        check_transaction_id(reverses)
    transaction_id = _transaction_id(obj, tx)
    with handled(obj, transaction_id):
        text = f"reversal of {reverses}" if description is None else description
        try:
            outcome = make_ledger(obj).reverse(account, reverses, transaction_id, text)
        except InsufficientFundsError as exc:
            _refusal_hint(obj, account, exc)
            raise
        c = outcome.currency
        sentence = (
            f"Reversal {transaction_id} was already posted; nothing new was written."
            if outcome.replayed
            else f"Reversed {reverses} on {account} (transaction {transaction_id}). "
            f"Balance: {money(outcome.balance, c)} {c}."
        )
        _after_write(obj, outcome, sentence, wait)


@app.command("set-overdraft", rich_help_panel=PANEL, cls=AmountCommand)
def set_overdraft(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account id.")],
    amount: Annotated[str, typer.Argument(help="The new limit, e.g. 100.00 (0 for none).")],
    json_out: JsonOpt = False,
) -> None:
    """Change the overdraft limit. Example: ledger set-overdraft alice 100.00"""
    obj = context(ctx, json_out)
    with handled(obj):
        from ledger.accounts.ids import check_existing_account_id
        from ledger.money import check_limit_syntax

        check_existing_account_id(account)
        check_limit_syntax(amount)
        outcome = make_ledger(obj).set_overdraft_limit(account, amount)
        _after_write(
            obj,
            outcome,
            f"Overdraft limit of {account} is {as_decimal(amount, outcome.currency)} "
            f"{outcome.currency}.",
            False,
            False,
        )


@app.command("close", rich_help_panel=PANEL)
def close_account(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account id (its balance must be zero).")],
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Close an account with a zero balance. Example: ledger close alice --yes"""
    obj = context(ctx, json_out)
    with handled(obj):
        from ledger.accounts.decider import Status, require_zero_balance
        from ledger.accounts.ids import check_existing_account_id

        check_existing_account_id(account)
        ledger = make_ledger(obj)
        # What would refuse the close is said before anyone is asked to confirm it.
        state = ledger.account(account)
        if state.status is not Status.CLOSED:
            require_zero_balance(state)
            confirm(obj, f"Close account {account}? It will accept nothing afterwards.", yes)
        outcome = ledger.close_account(account)
        what = "was already closed" if outcome.replayed else "closed"
        _after_write(obj, outcome, f"Account {account} {what}.", False, False)
