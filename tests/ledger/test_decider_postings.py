"""Decider rules for deposits and withdrawals: amounts, overdraft and idempotency."""

from __future__ import annotations

import pytest

from ledger.accounts.commands import AccountCommand
from ledger.accounts.decider import find_transaction
from ledger.accounts.events import PostingKind
from ledger.errors import InsufficientFundsError, InvalidInputError, TransactionConflictError
from tests.ledger.scenario import (
    LATER,
    OTHER_META,
    closed,
    deposit,
    deposited,
    given,
    opened,
    reversed_posting,
    withdraw,
    withdrawn,
)


def test_a_deposit_credits_the_amount_in_minor_units() -> None:
    given(opened(), deposited("t1", 1000, 1000)).when(deposit("5.25", "t2", "salary")).then(
        deposited("t2", 525, 1525, "salary")
    )


def test_a_deposit_in_a_zero_decimal_currency() -> None:
    given(opened(currency="JPY")).when(deposit("1500", "t1")).then(
        deposited("t1", 1500, 1500, currency="JPY")
    )


def test_a_withdrawal_debits_a_negative_amount() -> None:
    given(opened(), deposited("t1", 1000, 1000)).when(withdraw("2.50", "t2", "atm")).then(
        withdrawn("t2", 250, 750, "atm")
    )


def test_a_withdrawal_may_use_the_overdraft_down_to_exactly_minus_the_limit() -> None:
    given(opened(overdraft_limit=5000), deposited("t1", 1000, 1000)).when(
        withdraw("60.00", "t2")
    ).then(withdrawn("t2", 6000, -5000))


def test_a_withdrawal_beyond_the_overdraft_limit_is_refused_with_the_numbers() -> None:
    error = (
        given(opened(overdraft_limit=5000), deposited("t1", 1000, 1000))
        .when(withdraw("60.01", "t2"))
        .then_raises(InsufficientFundsError)
    )
    assert (error.balance, error.overdraft_limit, error.requested, error.shortfall) == (
        1000,
        5000,
        6001,
        1,
    )
    assert error.currency == "EUR"
    assert str(error) == (
        "insufficient funds: balance 10.00 EUR, overdraft limit 50.00 EUR, "
        "requested 60.01 EUR, short by 0.01 EUR"
    )


def test_a_withdrawal_from_an_empty_account_without_overdraft_is_refused() -> None:
    error = given(opened()).when(withdraw("0.01", "t1")).then_raises(InsufficientFundsError)
    assert error.shortfall == 1


@pytest.mark.parametrize(
    ("currency", "amount"),
    [("EUR", "5.001"), ("EUR", "5.000"), ("JPY", "1.5"), ("JPY", "1.0"), ("KWD", "1.0001")],
)
def test_more_decimals_than_the_currency_has_is_invalid_input(currency: str, amount: str) -> None:
    error = (
        given(opened(currency=currency)).when(deposit(amount, "t1")).then_raises(InvalidInputError)
    )
    assert currency in str(error)


def test_an_amount_above_the_maximum_is_invalid_input_once_the_currency_is_known() -> None:
    given(opened()).when(deposit("10000000000000", "t1")).then(deposited("t1", 10**15, 10**15))
    error = given(opened()).when(deposit("10000000000000.01", "t1")).then_raises(InvalidInputError)
    assert "too large" in str(error)


def test_repeating_a_deposit_is_a_no_op_whatever_its_time_and_metadata() -> None:
    given(opened(), deposited("t1", 500, 500, "salary")).when(
        deposit("5.00", "t1", "salary", now=LATER, meta=OTHER_META)
    ).then()


def test_a_repeat_compares_the_amount_as_a_number_not_as_text() -> None:
    given(opened(), deposited("t1", 500, 500)).when(deposit("5", "t1")).then()


def test_a_repeat_reports_the_original_outcome_through_find_transaction() -> None:
    scenario = given(
        opened(), deposited("t1", 500, 500), withdrawn("t2", 200, 300), deposited("t3", 1, 301)
    )
    scenario.when(withdraw("2.00", "t2")).then()
    record = find_transaction(scenario.state, "t2")
    assert record is not None
    assert (record.revision, record.balance_after, record.amount) == (2, 300, -200)
    assert record.kind is PostingKind.WITHDRAWAL
    assert not record.reversed
    assert find_transaction(scenario.state, "unknown") is None


def test_a_repeated_withdrawal_is_not_checked_against_the_current_balance_again() -> None:
    given(opened(), deposited("t1", 500, 500), withdrawn("t2", 500, 0)).when(
        withdraw("5.00", "t2")
    ).then()


def test_a_repeat_after_the_account_closed_still_reports_the_original_outcome() -> None:
    given(opened(), deposited("t1", 500, 500), withdrawn("t2", 500, 0), closed()).when(
        deposit("5.00", "t1")
    ).then()


@pytest.mark.parametrize(
    "command",
    [
        deposit("5.01", "t1", "salary"),
        deposit("5.00", "t1", "bonus"),
        withdraw("5.00", "t1", "salary"),
    ],
    ids=["other-amount", "other-description", "other-kind"],
)
def test_the_same_transaction_id_with_other_content_is_a_conflict(
    command: AccountCommand,
) -> None:
    error = (
        given(opened(), deposited("t1", 500, 500, "salary"))
        .when(command)
        .then_raises(TransactionConflictError)
    )
    assert error.transaction_id == "t1"


def test_a_deposit_may_not_reuse_the_transaction_id_of_a_reversal() -> None:
    given(opened(), deposited("t1", 500, 500), reversed_posting("r1", "t1", -500, 0)).when(
        deposit("5.00", "r1")
    ).then_raises(TransactionConflictError)
