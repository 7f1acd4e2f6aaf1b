"""Decider rule of the balance bound: no posting takes a balance above MAX_BALANCE."""

from __future__ import annotations

from ledger.errors import BalanceOutOfBoundsError, BusinessRuleError
from ledger.money import MAX_BALANCE, MAX_MINOR_UNITS
from tests.ledger.scenario import (
    deposit,
    deposited,
    given,
    opened,
    reverse,
    reversed_posting,
    withdraw,
    withdrawn,
)

# 10,000,000,000,000.00 EUR: a balance of MAX_BALANCE minor units.
TOP = "10000000000000.00"


def test_the_bound_is_the_largest_amount_and_far_below_int8() -> None:
    assert MAX_BALANCE == MAX_MINOR_UNITS == 10**15
    # Bounded above by MAX_BALANCE and below by minus the overdraft limit (at most
    # MAX_MINOR_UNITS), a balance and any balance_after fit PostgreSQL's int8.
    assert MAX_BALANCE + MAX_MINOR_UNITS < 2**63 - 1


def test_a_deposit_up_to_exactly_the_bound_is_accepted() -> None:
    given(opened(), deposited("t1", 1, 1)).when(deposit("9999999999999.99", "t2")).then(
        deposited("t2", MAX_BALANCE - 1, MAX_BALANCE)
    )
    given(opened()).when(deposit(TOP, "t1")).then(deposited("t1", MAX_BALANCE, MAX_BALANCE))


def test_a_deposit_beyond_the_bound_is_refused_saying_the_bound_in_money() -> None:
    error = (
        given(opened(), deposited("t1", MAX_BALANCE, MAX_BALANCE))
        .when(deposit("0.01", "t2"))
        .then_raises(BalanceOutOfBoundsError)
    )

    assert isinstance(error, BusinessRuleError)
    assert str(error) == (
        "balance bound: a posting of 0.01 EUR would take the balance from "
        "10000000000000.00 EUR to 10000000000000.01 EUR, above the largest balance an "
        "account may hold (10000000000000.00 EUR)"
    )


def test_reversing_a_withdrawal_beyond_the_bound_is_refused() -> None:
    given(
        opened(),
        deposited("t1", MAX_BALANCE, MAX_BALANCE),
        withdrawn("t2", 100, MAX_BALANCE - 100),
        deposited("t3", 100, MAX_BALANCE),
    ).when(reverse("r1", "t2")).then_raises(BalanceOutOfBoundsError)


def test_reversing_a_withdrawal_up_to_the_bound_is_accepted() -> None:
    given(
        opened(),
        deposited("t1", MAX_BALANCE, MAX_BALANCE),
        withdrawn("t2", 100, MAX_BALANCE - 100),
    ).when(reverse("r1", "t2")).then(reversed_posting("r1", "t2", 100, MAX_BALANCE))


def test_a_withdrawal_at_the_bound_is_accepted() -> None:
    given(opened(), deposited("t1", MAX_BALANCE, MAX_BALANCE)).when(withdraw("0.01", "t2")).then(
        withdrawn("t2", 1, MAX_BALANCE - 1)
    )


def test_a_replay_of_a_deposit_at_the_bound_is_still_a_replay() -> None:
    given(opened(), deposited("t1", MAX_BALANCE, MAX_BALANCE)).when(deposit(TOP, "t1")).then()
