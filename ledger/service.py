"""The write side's Python API: validated commands in, outcomes out (used by the CLI and tests)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.accounts.commands import (
    AccountCommand,
    ChangeOverdraftLimit,
    CloseAccount,
    Command,
    Deposit,
    OpenAccount,
    Reverse,
    Withdraw,
    make_command,
)
from ledger.accounts.decider import State, Status
from ledger.accounts.ids import check_account_id, check_transaction_id
from ledger.errors import (
    AccountClosedError,
    AccountNotFoundError,
    CurrencyMismatchError,
    LedgerError,
    SameAccountError,
    TransferNotFoundError,
)
from ledger.handler import CommandHandler, Outcome, handle_now
from ledger.money import to_minor_units
from ledger.transfer_process import TransferProcess
from ledger.transfer_store import TransferStore
from ledger.transfers.commands import RequestTransfer
from ledger.transfers.decider import TransferState, TransferStatus, initial_transfer_state


@dataclass(frozen=True, slots=True)
class TransferOutcome:
    """What a transfer command did: the transfer as it stands and where it is in $all."""

    state: TransferState
    replayed: bool  # the transfer id had been requested before, with the same content
    commit_position: int  # of its latest posting on an account (0: none)


def _trace_id() -> str:
    """A fresh correlation or causation id: random, from Python's generator (re-seeded in a
    forked child) rather than uuid4's system call, which lets go of the GIL on every command of
    a busy process. Never a transaction id: those are idempotency keys (`new_transaction_id`)."""
    return uuid.UUID(int=random.getrandbits(128), version=4).hex


def new_transaction_id() -> str:
    """A fresh client transaction id, for callers that did not bring one."""
    return "tx-" + uuid.uuid4().hex


class Ledger:
    """Open, deposit, withdraw, reverse, set the overdraft limit, close; read an account."""

    def __init__(
        self,
        handler: CommandHandler,
        *,
        clock: Callable[[], datetime],
        actor: str,
        transfers: TransferStore | None = None,
    ) -> None:
        self.handler = handler
        self.clock = clock
        self.actor = actor
        # Both event stores hold transfer streams too; a test may pass another.
        store: Any = transfers if transfers is not None else handler.store
        self.transfers = TransferProcess(handler, store, clock=clock, actor=actor)

    def _command(
        self,
        command_type: type[Command],
        fields: dict[str, Any],
        correlation_id: str | None,
    ) -> AccountCommand:
        if "transaction_id" in fields:
            # It becomes the causation id too: report a bad one as what it is.
            check_transaction_id(fields["transaction_id"])
        meta = {
            "correlation_id": correlation_id or _trace_id(),
            "causation_id": fields.get("transaction_id") or _trace_id(),
            "actor": self.actor,
        }
        command = make_command(command_type, {**fields, "now": self.clock(), "meta": meta})
        assert isinstance(command, AccountCommand)
        return command

    def _handle(self, command: AccountCommand) -> Outcome:
        return handle_now(self.handler, command, self.clock)

    def open_account(
        self,
        account_id: str,
        owner: str,
        currency: str,
        overdraft_limit: str = "0",
        *,
        correlation_id: str | None = None,
    ) -> Outcome:
        """Open an account; repeating the same open changes nothing."""
        fields = {
            "account_id": account_id,
            "owner": owner,
            "currency": currency,
            "overdraft_limit": overdraft_limit,
        }
        return self._handle(self._command(OpenAccount, fields, correlation_id))

    def deposit(
        self,
        account_id: str,
        amount: str,
        transaction_id: str,
        description: str = "",
        *,
        correlation_id: str | None = None,
    ) -> Outcome:
        """Post a deposit; the same transaction id and content again posts nothing."""
        fields = {
            "account_id": account_id,
            "amount": amount,
            "transaction_id": transaction_id,
            "description": description,
        }
        return self._handle(self._command(Deposit, fields, correlation_id))

    def withdraw(
        self,
        account_id: str,
        amount: str,
        transaction_id: str,
        description: str = "",
        *,
        correlation_id: str | None = None,
    ) -> Outcome:
        """Post a withdrawal, refused if it would go below minus the overdraft limit."""
        fields = {
            "account_id": account_id,
            "amount": amount,
            "transaction_id": transaction_id,
            "description": description,
        }
        return self._handle(self._command(Withdraw, fields, correlation_id))

    def reverse(
        self,
        account_id: str,
        reverses: str,
        transaction_id: str,
        description: str = "",
        *,
        correlation_id: str | None = None,
    ) -> Outcome:
        """Post the opposite of an earlier deposit or withdrawal, at most once."""
        fields = {
            "account_id": account_id,
            "reverses": reverses,
            "transaction_id": transaction_id,
            "description": description,
        }
        return self._handle(self._command(Reverse, fields, correlation_id))

    def set_overdraft_limit(
        self, account_id: str, limit: str, *, correlation_id: str | None = None
    ) -> Outcome:
        """Change the overdraft limit (not below what the balance already uses)."""
        fields = {"account_id": account_id, "limit": limit}
        return self._handle(self._command(ChangeOverdraftLimit, fields, correlation_id))

    def close_account(self, account_id: str, *, correlation_id: str | None = None) -> Outcome:
        """Close an account with a zero balance; repeating the close changes nothing."""
        fields = {"account_id": account_id}
        return self._handle(self._command(CloseAccount, fields, correlation_id))

    def account(self, account_id: str) -> State:
        """A consistent read: the account folded from the write model right now."""
        check_account_id(account_id)
        state = self.handler.load(account_id)
        if state.status is Status.NEW:
            raise AccountNotFoundError(account_id)
        return state

    def transfer(
        self,
        from_account: str,
        to_account: str,
        amount: str,
        transfer_id: str,
        description: str = "",
    ) -> TransferOutcome:
        """Move money between two open accounts of one currency, run to a final state.

        The same transfer id and content again returns the transfer as it stands (finishing
        it if a crash left it incomplete); other content under the id is refused. A transfer
        that ends rejected or failed raises the rule that refused it.
        """
        check_transaction_id(transfer_id)
        check_account_id(from_account)
        check_account_id(to_account)
        if from_account == to_account:
            raise SameAccountError(from_account)
        # Presumed new, so its stream is not read first: the request's append at "no stream"
        # finds out. Only when the accounts or the amount refuse it is the stream read, for a
        # replay is compared with the transfer as requested, not with the accounts of today.
        known = (initial_transfer_state, 0)
        try:
            currency, revisions = self._transfer_accounts(from_account, to_account)
            minor = to_minor_units(amount, currency)
        except LedgerError:
            known = self.transfers.load(transfer_id)
            if known[0].status is TransferStatus.NEW:
                raise
            currency, revisions = known[0].currency, (-1, -1)
            minor = to_minor_units(amount, currency)
        fields = {
            "transfer_id": transfer_id,
            "now": self.clock(),
            "from_account": from_account,
            "to_account": to_account,
            "amount": minor,
            "currency": currency,
            "description": description,
            "from_revision": revisions[0],
            "to_revision": revisions[1],
        }
        command = make_command(RequestTransfer, fields)
        state, position, replayed = self.transfers.request(command, known)
        result = self.transfers.run(transfer_id, (state, position))
        if result.refusal is not None and not replayed:
            raise result.refusal
        return TransferOutcome(result.state, replayed, result.state.posting_position)

    def _transfer_accounts(self, from_account: str, to_account: str) -> tuple[str, tuple[int, int]]:
        """The currency of a new transfer and its accounts' revisions (every leg will come
        after them); refuse it when an account rule already forbids it."""
        # A cached state may be behind the store, which is enough here: the currency never
        # changes, and an account closed since is refused by the step that posts on it.
        source, target = self.handler.current(from_account), self.handler.current(to_account)
        for account_id, state in ((from_account, source), (to_account, target)):
            if state.status is Status.NEW:
                raise AccountNotFoundError(account_id)
            if state.status is Status.CLOSED:
                raise AccountClosedError(account_id)
        if target.currency != source.currency:
            raise CurrencyMismatchError(to_account, target.currency, source.currency)
        return source.currency, (source.revision, target.revision)

    def transfer_state(self, transfer_id: str) -> TransferState:
        """A consistent read: the transfer folded from its stream right now."""
        check_transaction_id(transfer_id)
        state, _ = self.transfers.load(transfer_id)
        if state.status is TransferStatus.NEW:
            raise TransferNotFoundError(transfer_id)
        return state
