"""Every business rule end to end through the Ledger, and input refused before any write."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest
from esdbclient import EventStoreDBClient

from ledger.errors import (
    AccountAlreadyOpenError,
    AccountClosedError,
    AccountNotFoundError,
    AlreadyReversedError,
    BusinessRuleError,
    InsufficientFundsError,
    InvalidInputError,
    NonZeroBalanceError,
    NotReversibleError,
    OverdraftLimitTooLowError,
    PostingNotFoundError,
)
from ledger.service import Ledger
from tests.support.esdb import stream_events

E = TypeVar("E", bound=BusinessRuleError)


def refused(error: type[E], action: Callable[[], object]) -> E:
    """Run the action, check it raises this rule's error (a business refusal), return it."""
    with pytest.raises(error) as caught:
        action()
    assert isinstance(caught.value, BusinessRuleError)
    return caught.value


def test_opening_twice_with_the_same_details_changes_nothing(
    ledger: Ledger, raw: EventStoreDBClient, account_id: str
) -> None:
    first = ledger.open_account(account_id, "Otto", "EUR", "10.00")
    again = ledger.open_account(account_id, "Otto", "EUR", "10.00")

    assert (first.replayed, again.replayed) == (False, True)
    assert again.revision == first.revision == 0
    assert [e.type for e in stream_events(raw, account_id)] == ["AccountOpened"]


@pytest.mark.parametrize(
    ("owner", "currency", "limit"),
    [("Other Otto", "EUR", "10.00"), ("Otto", "USD", "10.00"), ("Otto", "EUR", "0")],
)
def test_opening_again_with_other_details_is_refused(
    ledger: Ledger, raw: EventStoreDBClient, account_id: str, owner: str, currency: str, limit: str
) -> None:
    ledger.open_account(account_id, "Otto", "EUR", "10.00")

    refused(
        AccountAlreadyOpenError, lambda: ledger.open_account(account_id, owner, currency, limit)
    )

    assert len(stream_events(raw, account_id)) == 1


def test_an_unknown_account_accepts_nothing_and_cannot_be_read(
    ledger: Ledger, raw: EventStoreDBClient, account_id: str
) -> None:
    for action in (
        lambda: ledger.deposit(account_id, "1.00", "t1"),
        lambda: ledger.withdraw(account_id, "1.00", "t1"),
        lambda: ledger.reverse(account_id, "t0", "t1"),
        lambda: ledger.set_overdraft_limit(account_id, "1.00"),
        lambda: ledger.close_account(account_id),
        lambda: ledger.account(account_id),
    ):
        error = refused(AccountNotFoundError, action)
        assert error.account_id == account_id

    assert stream_events(raw, account_id) == ()


def test_only_a_zero_balance_account_closes_and_a_closed_account_refuses_commands(
    ledger: Ledger, raw: EventStoreDBClient, account_id: str
) -> None:
    ledger.open_account(account_id, "Otto", "EUR")
    ledger.deposit(account_id, "5.00", "t1")
    error = refused(NonZeroBalanceError, lambda: ledger.close_account(account_id))
    assert error.balance == 500
    ledger.withdraw(account_id, "5.00", "t2")

    closed = ledger.close_account(account_id)
    closed_again = ledger.close_account(account_id)

    assert (closed.replayed, closed_again.replayed) == (False, True)
    assert closed_again.revision == closed.revision
    for action in (
        lambda: ledger.deposit(account_id, "1.00", "t3"),
        lambda: ledger.withdraw(account_id, "1.00", "t3"),
        lambda: ledger.reverse(account_id, "t1", "t3"),
        lambda: ledger.set_overdraft_limit(account_id, "1.00"),
        lambda: ledger.open_account(account_id, "Otto", "EUR"),
    ):
        refused(AccountClosedError, action)
    # A retry of a posting the account accepted before it closed is still answered.
    assert ledger.deposit(account_id, "5.00", "t1").replayed is True
    assert [e.type for e in stream_events(raw, account_id)][-1] == "AccountClosed"
    assert len(stream_events(raw, account_id)) == 4


def test_a_posting_is_reversed_at_most_once_and_a_reversal_never(
    ledger: Ledger, raw: EventStoreDBClient, account_id: str
) -> None:
    ledger.open_account(account_id, "Otto", "EUR")
    ledger.deposit(account_id, "8.00", "t1")
    ledger.deposit(account_id, "2.00", "t2")

    reversal = ledger.reverse(account_id, "t1", "r1")

    assert reversal.balance == 200
    refused(AlreadyReversedError, lambda: ledger.reverse(account_id, "t1", "r2"))
    refused(NotReversibleError, lambda: ledger.reverse(account_id, "r1", "r3"))
    refused(PostingNotFoundError, lambda: ledger.reverse(account_id, "never-posted", "r4"))
    assert len(stream_events(raw, account_id)) == 4


def test_withdrawals_stay_within_the_overdraft_limit_which_cannot_drop_below_the_debt(
    ledger: Ledger, raw: EventStoreDBClient, account_id: str
) -> None:
    ledger.open_account(account_id, "Otto", "EUR", "50.00")
    ledger.withdraw(account_id, "30.00", "t1")
    error = refused(InsufficientFundsError, lambda: ledger.withdraw(account_id, "20.01", "t2"))
    assert error.shortfall == 1

    refused(OverdraftLimitTooLowError, lambda: ledger.set_overdraft_limit(account_id, "29.99"))
    lowered = ledger.set_overdraft_limit(account_id, "30.00")

    assert (lowered.replayed, lowered.balance) == (False, -3_000)
    refused(InsufficientFundsError, lambda: ledger.withdraw(account_id, "0.01", "t3"))
    assert ledger.account(account_id).overdraft_limit == 3_000
    assert len(stream_events(raw, account_id)) == 3


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(lambda ledger, acc: ledger.deposit(acc, "1e3", "t9"), id="exponent"),
        pytest.param(lambda ledger, acc: ledger.deposit(acc, "5.001", "t9"), id="eur-decimals"),
        pytest.param(lambda ledger, acc: ledger.withdraw(acc, "-5", "t9"), id="sign"),
        pytest.param(lambda ledger, acc: ledger.withdraw(acc, "0.00", "t9"), id="zero"),
        pytest.param(lambda ledger, acc: ledger.deposit(acc, "1.00", "bad id"), id="tx-id"),
        pytest.param(lambda ledger, acc: ledger.set_overdraft_limit(acc, "0.001"), id="limit"),
        pytest.param(lambda ledger, acc: ledger.open_account(acc, "X", "eur"), id="currency"),
        pytest.param(lambda ledger, acc: ledger.deposit("../x", "1.00", "t9"), id="account-id"),
        pytest.param(lambda ledger, acc: ledger.account("../x"), id="account-id-read"),
    ],
)
def test_invalid_input_is_refused_before_anything_is_written(
    ledger: Ledger,
    raw: EventStoreDBClient,
    account_id: str,
    command: Callable[[Ledger, str], object],
) -> None:
    ledger.open_account(account_id, "Otto", "EUR")
    ledger.deposit(account_id, "10.00", "t1")
    before = stream_events(raw, account_id)

    with pytest.raises(InvalidInputError):
        command(ledger, account_id)

    assert stream_events(raw, account_id) == before
    assert stream_events(raw, "../x") == ()


def test_invalid_input_for_a_new_account_writes_no_stream(
    ledger: Ledger, raw: EventStoreDBClient, account_id: str
) -> None:
    actions: list[Callable[[], object]] = [
        lambda: ledger.open_account(account_id, "Otto", "EUR", "1e3"),
        lambda: ledger.open_account(account_id, "Otto", "EUR", "5.001"),
        lambda: ledger.open_account(account_id, "", "EUR"),
        lambda: ledger.open_account(account_id.upper(), "Otto", "EUR"),
    ]
    for action in actions:
        with pytest.raises(InvalidInputError):
            action()

    assert stream_events(raw, account_id) == ()
    assert stream_events(raw, account_id.upper()) == ()
