"""Given/when/then helper and small factories for commands and events of one test account."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger.accounts.commands import (
    AccountCommand,
    ChangeOverdraftLimit,
    CloseAccount,
    CommandMeta,
    Deposit,
    OpenAccount,
    Reverse,
    Withdraw,
)
from ledger.accounts.decider import State, decide, evolve, initial_state
from ledger.accounts.events import (
    AccountClosed,
    AccountEvent,
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
    OverdraftLimitChanged,
    PostingReversed,
)
from ledger.errors import LedgerError

ACCOUNT = "acc-1"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
META = CommandMeta(correlation_id="corr-1", causation_id="cause-1", actor="teller:alice")
OTHER_META = CommandMeta(correlation_id="corr-2", causation_id="cause-2", actor="teller:bob")


def fold(events: Iterable[AccountEvent], state: State = initial_state) -> State:
    """Fold events into a state, starting from the initial state."""
    for event in events:
        state = evolve(state, event)
    return state


class Then:
    """The outcome of deciding one command, checked by then() or then_raises()."""

    def __init__(self, state: State, command: AccountCommand) -> None:
        self.state = state
        self.command = command

    def then(self, *expected: AccountEvent) -> State:
        """Assert the command produces exactly these events; return the state after them."""
        produced = decide(self.command, self.state)
        assert produced == list(expected)
        return fold(produced, self.state)

    def then_raises(self, error: type[LedgerError]) -> Any:
        """Assert the command is refused with this error type; return the error."""
        with pytest.raises(error) as caught:
            decide(self.command, self.state)
        return caught.value


class Given:
    """A state folded from past events, waiting for a command."""

    def __init__(self, events: Iterable[AccountEvent]) -> None:
        self.state = fold(events)

    def when(self, command: AccountCommand) -> Then:
        """Decide this command on the given state."""
        return Then(self.state, command)


def given(*events: AccountEvent) -> Given:
    """Start a scenario from these past events (none: an account that was never opened)."""
    return Given(events)


def open_account(**fields: Any) -> OpenAccount:
    """OpenAccount for the test account; keyword arguments override the defaults."""
    values: dict[str, Any] = {
        "account_id": ACCOUNT,
        "owner": "Alice Example",
        "currency": "EUR",
        "now": NOW,
        "meta": META,
    }
    return OpenAccount(**(values | fields))


def deposit(amount: str, transaction_id: str, description: str = "", **fields: Any) -> Deposit:
    """Deposit on the test account."""
    values: dict[str, Any] = {"account_id": ACCOUNT, "now": NOW, "meta": META}
    return Deposit(
        amount=amount, transaction_id=transaction_id, description=description, **(values | fields)
    )


def withdraw(amount: str, transaction_id: str, description: str = "", **fields: Any) -> Withdraw:
    """Withdraw from the test account."""
    values: dict[str, Any] = {"account_id": ACCOUNT, "now": NOW, "meta": META}
    return Withdraw(
        amount=amount, transaction_id=transaction_id, description=description, **(values | fields)
    )


def reverse(transaction_id: str, reverses: str, **fields: Any) -> Reverse:
    """Reverse a posting of the test account."""
    values: dict[str, Any] = {"account_id": ACCOUNT, "now": NOW, "meta": META}
    return Reverse(transaction_id=transaction_id, reverses=reverses, **(values | fields))


def change_limit(limit: str, **fields: Any) -> ChangeOverdraftLimit:
    """ChangeOverdraftLimit of the test account."""
    values: dict[str, Any] = {"account_id": ACCOUNT, "now": NOW, "meta": META}
    return ChangeOverdraftLimit(limit=limit, **(values | fields))


def close(**fields: Any) -> CloseAccount:
    """CloseAccount of the test account."""
    values: dict[str, Any] = {"account_id": ACCOUNT, "now": NOW, "meta": META}
    return CloseAccount(**(values | fields))


def opened(
    owner: str = "Alice Example", currency: str = "EUR", overdraft_limit: int = 0
) -> AccountOpened:
    """AccountOpened of the test account."""
    return AccountOpened(
        account_id=ACCOUNT,
        owner=owner,
        currency=currency,
        overdraft_limit=overdraft_limit,
        occurred_at=NOW,
    )


def deposited(
    transaction_id: str, amount: int, balance_after: int, description: str = "", **fields: Any
) -> MoneyDeposited:
    """MoneyDeposited on the test account (amount in minor units)."""
    values: dict[str, Any] = {"account_id": ACCOUNT, "currency": "EUR", "occurred_at": NOW}
    return MoneyDeposited(
        transaction_id=transaction_id,
        amount=amount,
        balance_after=balance_after,
        description=description,
        **(values | fields),
    )


def withdrawn(
    transaction_id: str, amount: int, balance_after: int, description: str = "", **fields: Any
) -> MoneyWithdrawn:
    """MoneyWithdrawn from the test account; amount is the positive minor units taken."""
    values: dict[str, Any] = {"account_id": ACCOUNT, "currency": "EUR", "occurred_at": NOW}
    return MoneyWithdrawn(
        transaction_id=transaction_id,
        amount=-amount,
        balance_after=balance_after,
        description=description,
        **(values | fields),
    )


def reversed_posting(
    transaction_id: str, reverses: str, amount: int, balance_after: int, **fields: Any
) -> PostingReversed:
    """PostingReversed on the test account; amount is the signed minor units posted."""
    values: dict[str, Any] = {
        "account_id": ACCOUNT,
        "currency": "EUR",
        "occurred_at": NOW,
        "description": "",
    }
    return PostingReversed(
        transaction_id=transaction_id,
        reverses=reverses,
        amount=amount,
        balance_after=balance_after,
        **(values | fields),
    )


def limit_changed(limit: int, previous_limit: int) -> OverdraftLimitChanged:
    """OverdraftLimitChanged of the test account."""
    return OverdraftLimitChanged(
        account_id=ACCOUNT, limit=limit, previous_limit=previous_limit, occurred_at=NOW
    )


def closed() -> AccountClosed:
    """AccountClosed of the test account."""
    return AccountClosed(account_id=ACCOUNT, occurred_at=NOW)
