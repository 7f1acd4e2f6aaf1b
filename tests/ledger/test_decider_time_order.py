"""Decider rule of time order: no new event may be earlier than the account's last event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger.accounts.commands import AccountCommand
from ledger.accounts.decider import initial_state
from ledger.accounts.events import AccountClosed, AccountEvent
from ledger.errors import EarlierThanLastEventError, InvalidInputError, TransactionConflictError
from tests.ledger.scenario import (
    ACCOUNT,
    change_limit,
    close,
    deposit,
    deposited,
    fold,
    given,
    limit_changed,
    opened,
    reverse,
    reversed_posting,
    withdraw,
    withdrawn,
)

LAST = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
EARLIER = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
LATER = LAST + timedelta(microseconds=1)


def history() -> list[AccountEvent]:
    """An open account with 100.00 EUR deposited by t1, its last event at LAST."""
    return [opened(), deposited("t1", 10000, 10000, occurred_at=LAST)]


@pytest.mark.parametrize(
    ("command", "what"),
    [
        (deposit("5.00", "t2", now=EARLIER), "deposit 't2'"),
        (withdraw("5.00", "t2", now=EARLIER), "withdrawal 't2'"),
        (reverse("t2", "t1", now=EARLIER), "reversal 't2'"),
        (change_limit("50.00", now=EARLIER), "overdraft limit change"),
    ],
)
def test_a_command_earlier_than_the_last_event_is_refused_saying_both_times(
    command: AccountCommand, what: str
) -> None:
    error = given(*history()).when(command).then_raises(EarlierThanLastEventError)

    assert issubclass(EarlierThanLastEventError, InvalidInputError)  # exit 2 through the CLI
    assert str(error) == (
        f"{what} on account 'acc-1' at 2026-12-01T10:00:00Z is earlier than the account's "
        "last event at 2026-12-02T09:00:00Z; an account's events must be in time order"
    )
    assert (error.at, error.last_event_at) == (EARLIER, LAST)


def test_closing_earlier_than_the_last_event_is_refused() -> None:
    given(opened(), deposited("t1", 100, 100), withdrawn("t2", 100, 0, occurred_at=LAST)).when(
        close(now=EARLIER)
    ).then_raises(EarlierThanLastEventError)


def test_a_posting_at_the_same_time_as_the_last_event_is_allowed() -> None:
    given(*history()).when(deposit("5.00", "t2", now=LAST)).then(
        deposited("t2", 500, 10500, occurred_at=LAST)
    )


def test_a_posting_later_than_the_last_event_is_allowed_and_moves_time_forward() -> None:
    after = (
        given(*history())
        .when(withdraw("5.00", "t2", now=LATER))
        .then(withdrawn("t2", 500, 9500, occurred_at=LATER))
    )
    assert after.last_event_at == LATER


@pytest.mark.parametrize("now", [EARLIER, LAST, LATER], ids=["older", "same", "newer"])
def test_a_replay_is_recognised_before_the_time_check_at_any_timestamp(now: datetime) -> None:
    # The torture run and any client re-send a command with the same id and a new clock
    # reading; a re-send can also carry an older one (a queued copy delivered late).
    given(*history()).when(deposit("100.00", "t1", now=now)).then()
    given(*history(), reversed_posting("t3", "t1", -10000, 0, occurred_at=LAST)).when(
        reverse("t3", "t1", now=EARLIER)
    ).then()


def test_an_older_retry_with_other_content_is_a_conflict_not_a_time_error() -> None:
    given(*history()).when(deposit("7.00", "t1", now=EARLIER)).then_raises(TransactionConflictError)


def test_no_ops_at_an_older_time_write_nothing_and_are_not_refused() -> None:
    given(*history()).when(change_limit("0", now=EARLIER)).then()
    closed_at_last = AccountClosed(account_id=ACCOUNT, occurred_at=LAST)
    given(opened(), closed_at_last).when(close(now=EARLIER)).then()


def test_evolve_keeps_the_latest_event_time_even_from_a_stream_out_of_order() -> None:
    # A stream written before the rule may go back in time: the latest time still bounds.
    assert initial_state.last_event_at is None
    state = fold([opened(), deposited("t1", 1, 1, occurred_at=LAST)])
    assert state.last_event_at == LAST
    state = fold([deposited("t2", 1, 2, occurred_at=EARLIER), limit_changed(0, 0)], state)
    assert state.last_event_at == LAST

    given(opened(), deposited("t1", 1, 1, occurred_at=LAST), deposited("t2", 1, 2)).when(
        deposit("1.00", "t3", now=EARLIER)
    ).then_raises(EarlierThanLastEventError)


def test_a_backdated_command_is_refused_for_its_time_before_any_business_rule() -> None:
    given(*history()).when(withdraw("500.00", "t2", now=EARLIER)).then_raises(
        EarlierThanLastEventError
    )
    given(*history()).when(close(now=EARLIER)).then_raises(EarlierThanLastEventError)
