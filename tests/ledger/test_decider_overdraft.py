"""Decider rules for changing the overdraft limit."""

from __future__ import annotations

from ledger.errors import InvalidInputError, OverdraftLimitTooLowError
from tests.ledger.scenario import (
    change_limit,
    deposited,
    given,
    limit_changed,
    opened,
    withdrawn,
)


def test_raising_the_limit() -> None:
    given(opened()).when(change_limit("250.00")).then(limit_changed(25000, 0))


def test_setting_the_limit_to_zero_is_allowed_when_the_balance_is_not_negative() -> None:
    given(opened(overdraft_limit=5000), deposited("t1", 1, 1)).when(change_limit("0")).then(
        limit_changed(0, 5000)
    )


def test_setting_the_same_limit_again_is_a_no_op() -> None:
    given(opened(overdraft_limit=5000)).when(change_limit("50")).then()


def test_lowering_the_limit_to_exactly_what_the_balance_uses_is_allowed() -> None:
    given(opened(overdraft_limit=5000), withdrawn("t1", 3000, -3000)).when(
        change_limit("30.00")
    ).then(limit_changed(3000, 5000))


def test_lowering_the_limit_below_what_the_balance_uses_is_refused() -> None:
    error = (
        given(opened(overdraft_limit=5000), withdrawn("t1", 3000, -3000))
        .when(change_limit("29.99"))
        .then_raises(OverdraftLimitTooLowError)
    )
    assert (error.balance, error.requested_limit, error.currency) == (-3000, 2999, "EUR")


def test_a_limit_with_more_decimals_than_the_currency_is_invalid_input() -> None:
    error = given(opened(currency="JPY")).when(change_limit("10.5")).then_raises(InvalidInputError)
    assert "overdraft limit" in str(error)
