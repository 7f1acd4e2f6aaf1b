"""Decider rules for opening and closing an account, and for what a closed account refuses."""

from __future__ import annotations

import pytest

from ledger.accounts.commands import AccountCommand
from ledger.accounts.events import AccountEvent
from ledger.errors import (
    AccountAlreadyOpenError,
    AccountClosedError,
    AccountNotFoundError,
    NonZeroBalanceError,
)
from tests.ledger.scenario import (
    LATER,
    OTHER_META,
    change_limit,
    close,
    closed,
    deposit,
    deposited,
    given,
    limit_changed,
    open_account,
    opened,
    reverse,
    withdraw,
    withdrawn,
)


def test_opening_a_new_account_records_owner_currency_and_limit_in_minor_units() -> None:
    given().when(open_account(overdraft_limit="150.50")).then(opened(overdraft_limit=15050))


def test_opening_uses_the_exponent_of_the_chosen_currency() -> None:
    given().when(open_account(currency="KWD", overdraft_limit="1.5")).then(
        opened(currency="KWD", overdraft_limit=1500)
    )


def test_the_overdraft_limit_defaults_to_zero() -> None:
    given().when(open_account()).then(opened(overdraft_limit=0))


def test_repeating_the_same_open_is_a_no_op_even_at_another_time_by_another_actor() -> None:
    given(opened(overdraft_limit=1000)).when(
        open_account(overdraft_limit="10.00", now=LATER, meta=OTHER_META)
    ).then()


def test_repeating_the_open_compares_the_limit_as_an_amount_not_as_text() -> None:
    given(opened(overdraft_limit=1000)).when(open_account(overdraft_limit="10")).then()


def test_repeating_the_open_after_the_limit_changed_is_still_the_same_open() -> None:
    given(opened(overdraft_limit=1000), limit_changed(5000, 1000)).when(
        open_account(overdraft_limit="10")
    ).then()


@pytest.mark.parametrize(
    "details",
    [{"owner": "Bob Other"}, {"currency": "USD"}, {"overdraft_limit": "20.00"}],
    ids=["owner", "currency", "limit"],
)
def test_opening_again_with_other_details_is_a_conflict(details: dict[str, str]) -> None:
    error = given(opened()).when(open_account(**details)).then_raises(AccountAlreadyOpenError)
    assert "acc-1" in str(error)


def test_opening_a_closed_account_is_refused() -> None:
    given(opened(), closed()).when(open_account()).then_raises(AccountClosedError)


def test_closing_an_account_with_zero_balance() -> None:
    given(opened(), deposited("t1", 500, 500), withdrawn("t2", 500, 0)).when(close()).then(closed())


@pytest.mark.parametrize("balance_events", [[deposited("t1", 1, 1)], [withdrawn("t1", 1, -1)]])
def test_closing_needs_a_zero_balance(balance_events: list[AccountEvent]) -> None:
    error = (
        given(opened(overdraft_limit=100), *balance_events)
        .when(close())
        .then_raises(NonZeroBalanceError)
    )
    assert error.balance in (1, -1)
    assert error.currency == "EUR"
    assert "not zero" in str(error)


def test_repeating_a_close_is_a_no_op() -> None:
    given(opened(), closed()).when(close(now=LATER)).then()


def test_closing_an_unknown_account_is_refused() -> None:
    given().when(close()).then_raises(AccountNotFoundError)


@pytest.mark.parametrize(
    "command",
    [
        deposit("1.00", "new-1"),
        withdraw("1.00", "new-2"),
        reverse("new-3", "t1"),
        change_limit("5.00"),
    ],
    ids=["deposit", "withdraw", "reverse", "change-limit"],
)
def test_a_closed_account_accepts_nothing_else(command: AccountCommand) -> None:
    given(opened(), deposited("t1", 100, 100), withdrawn("t2", 100, 0), closed()).when(
        command
    ).then_raises(AccountClosedError)


@pytest.mark.parametrize(
    "command",
    [deposit("1.00", "t1"), withdraw("1.00", "t1"), reverse("t2", "t1"), change_limit("5.00")],
    ids=["deposit", "withdraw", "reverse", "change-limit"],
)
def test_commands_on_an_unknown_account_are_refused(command: AccountCommand) -> None:
    error = given().when(command).then_raises(AccountNotFoundError)
    assert error.account_id == "acc-1"
