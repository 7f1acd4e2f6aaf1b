"""Decider rules for a transfer's legs on an account: debit, credit and refund postings."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.accounts.commands import PostTransferLeg, Reverse, TransferStep, make_command
from ledger.accounts.decider import decide
from ledger.accounts.events import (
    MoneyDeposited,
    MoneyWithdrawn,
    PostingKind,
    deserialise_event,
    serialise_event,
)
from ledger.accounts.window import WINDOW_SIZE
from ledger.errors import (
    AccountClosedError,
    CurrencyMismatchError,
    InsufficientFundsError,
    InvalidInputError,
    NotReversibleError,
    StepOutsideWindowError,
)
from tests.ledger.scenario import (
    ACCOUNT,
    META,
    NOW,
    closed,
    deposited,
    given,
    opened,
    reverse,
)


def leg(step: TransferStep, amount: int = 300, **fields: Any) -> PostTransferLeg:
    values: dict[str, Any] = {
        "account_id": ACCOUNT,
        "now": NOW,
        "meta": META,
        "transfer_id": "x1",
        "step": step,
        "counterparty": "acc-2",
        "amount": amount,
        "currency": "EUR",
        "description": "rent",
    }
    return PostTransferLeg(**(values | fields))


def debited(amount: int, balance_after: int) -> MoneyWithdrawn:
    return MoneyWithdrawn(
        account_id=ACCOUNT,
        transaction_id="x1/debit",
        amount=-amount,
        currency="EUR",
        description="rent",
        balance_after=balance_after,
        occurred_at=NOW,
        kind=PostingKind.TRANSFER_OUT,
        transfer_id="x1",
        counterparty="acc-2",
    )


def credited(amount: int, balance_after: int, kind: PostingKind) -> MoneyDeposited:
    step = "credit" if kind is PostingKind.TRANSFER_IN else "refund"
    return MoneyDeposited(
        account_id=ACCOUNT,
        transaction_id=f"x1/{step}",
        amount=amount,
        currency="EUR",
        description="rent",
        balance_after=balance_after,
        occurred_at=NOW,
        kind=kind,
        transfer_id="x1",
        counterparty="acc-2",
    )


def test_a_debit_posts_a_transfer_out_with_the_transfer_and_its_counterparty() -> None:
    given(opened(), deposited("t1", 1000, 1000)).when(leg(TransferStep.DEBIT)).then(
        debited(300, 700)
    )


def test_a_credit_posts_a_transfer_in_under_the_transfer_step_id() -> None:
    given(opened()).when(leg(TransferStep.CREDIT)).then(credited(300, 300, PostingKind.TRANSFER_IN))


def test_a_debit_follows_the_overdraft_rule_of_a_withdrawal() -> None:
    error = (
        given(opened(overdraft_limit=100), deposited("t1", 100, 100))
        .when(leg(TransferStep.DEBIT))
        .then_raises(InsufficientFundsError)
    )
    assert (error.shortfall, error.balance, error.overdraft_limit) == (100, 100, 100)


def test_a_repeated_step_posts_nothing() -> None:
    given(opened(), deposited("t1", 1000, 1000), debited(300, 700)).when(
        leg(TransferStep.DEBIT)
    ).then()


def test_a_repeated_debit_is_a_replay_even_when_the_funds_are_gone_since() -> None:
    given(opened(), deposited("t1", 300, 300), debited(300, 0)).when(leg(TransferStep.DEBIT)).then()


def test_a_credit_to_a_closed_account_is_refused() -> None:
    given(opened(), closed()).when(leg(TransferStep.CREDIT)).then_raises(AccountClosedError)


def test_a_credit_made_before_the_account_closed_is_still_a_replay() -> None:
    events = (opened(), credited(300, 300, PostingKind.TRANSFER_IN))
    given(*events).when(leg(TransferStep.CREDIT)).then()


def test_a_refund_reaches_a_source_that_closed_meanwhile() -> None:
    given(opened(), closed()).when(leg(TransferStep.REFUND)).then(
        credited(300, 300, PostingKind.TRANSFER_REFUND)
    )


def test_a_leg_in_another_currency_is_refused() -> None:
    given(opened(currency="USD")).when(leg(TransferStep.CREDIT)).then_raises(CurrencyMismatchError)


def test_a_transfer_leg_cannot_be_named_by_a_reversal() -> None:
    with pytest.raises(InvalidInputError, match="transaction id 'x1/debit'"):
        make_command(Reverse, {**dict(reverse("r1", "t1")), "reverses": "x1/debit"})


def test_a_transfer_leg_cannot_be_reversed_on_its_own() -> None:
    # Built without validation: the decider refuses it even if a caller got past the syntax.
    command = Reverse.model_construct(**{**dict(reverse("r1", "t1")), "reverses": "x1/debit"})
    given(opened(), deposited("t1", 1000, 1000), debited(300, 700)).when(command).then_raises(
        NotReversibleError
    )


def test_transfer_fields_round_trip_and_plain_postings_keep_their_stored_form() -> None:
    event = debited(300, 700)
    event_type, data = serialise_event(event)
    assert deserialise_event(event_type, data, 1) == event
    _, plain = serialise_event(deposited("t1", 100, 100))
    assert b"transfer_id" not in plain and b"counterparty" not in plain


def test_a_step_beyond_the_window_must_be_searched_for_before_it_is_posted() -> None:
    history = [opened(), deposited("t1", 100_000, 100_000)]
    history += [deposited(f"d{i}", 1, 100_001 + i) for i in range(WINDOW_SIZE + 1)]
    state = given(*history).state
    beyond = leg(TransferStep.DEBIT, since_revision=1)

    given(*history).when(beyond).then_raises(StepOutsideWindowError)
    searched = leg(TransferStep.DEBIT, since_revision=1, searched_to=state.revision)
    [posted] = decide(searched, state)
    assert (posted.transaction_id, posted.amount) == ("x1/debit", -300)
    recent = leg(TransferStep.DEBIT, since_revision=state.revision - WINDOW_SIZE)
    assert len(decide(recent, state)) == 1  # all since then is in the window: no search
