"""The write side's Python API: validated commands in, outcomes out (used by the CLI and tests)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
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
    AccountNotFoundError,
    ConcurrencyConflictError,
    EarlierThanLastEventError,
)
from ledger.handler import CommandHandler, Outcome


def new_transaction_id() -> str:
    """A fresh client transaction id, for callers that did not bring one."""
    return "tx-" + uuid.uuid4().hex


class Ledger:
    """Open, deposit, withdraw, reverse, set the overdraft limit, close; read an account."""

    def __init__(
        self, handler: CommandHandler, *, clock: Callable[[], datetime], actor: str
    ) -> None:
        self.handler = handler
        self.clock = clock
        self.actor = actor

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
            "correlation_id": correlation_id or uuid.uuid4().hex,
            "causation_id": fields.get("transaction_id") or uuid.uuid4().hex,
            "actor": self.actor,
        }
        command = make_command(command_type, {**fields, "now": self.clock(), "meta": meta})
        assert isinstance(command, AccountCommand)
        return command

    def _handle(self, command: AccountCommand) -> Outcome:
        # The clock is read before the account is loaded: another writer may append a later
        # event in between, and the handler re-decides the same command on that conflict. Such
        # a command is not backdated, only overtaken, so it is decided again at a fresh reading
        # of the clock, as boundedly as a conflict; a clock still behind the account's last
        # event is refused.
        for _ in range(self.handler.max_attempts):
            try:
                return self.handler.handle(command)
            except EarlierThanLastEventError as exc:
                now = self.clock()
                if now < exc.last_event_at:
                    raise
                command = make_command(type(command), {**dict(command), "now": now})
        raise ConcurrencyConflictError(
            f"account {command.account_id} kept receiving later postings while the command was "
            f"being decided ({self.handler.max_attempts} attempts); it is safe to retry with "
            "the same transaction id"
        )

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
