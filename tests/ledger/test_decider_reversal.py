"""Decider rules for reversals: opposite amount, at most once, never of a reversal."""

from __future__ import annotations

from ledger.accounts.decider import find_transaction
from ledger.errors import (
    AlreadyReversedError,
    InsufficientFundsError,
    NotReversibleError,
    PostingNotFoundError,
    TransactionConflictError,
)
from tests.ledger.scenario import (
    LATER,
    OTHER_META,
    deposited,
    given,
    opened,
    reverse,
    reversed_posting,
    withdrawn,
)


def test_reversing_a_deposit_posts_its_opposite_amount() -> None:
    given(opened(), deposited("t1", 700, 700), deposited("t2", 300, 1000)).when(
        reverse("r1", "t1", description="entered twice")
    ).then(reversed_posting("r1", "t1", -700, 300, description="entered twice"))


def test_reversing_a_withdrawal_credits_it_back() -> None:
    given(opened(), deposited("t1", 700, 700), withdrawn("t2", 200, 500)).when(
        reverse("r1", "t2")
    ).then(reversed_posting("r1", "t2", 200, 700))


def test_a_reversed_posting_is_marked_as_reversed() -> None:
    state = given(opened(), deposited("t1", 700, 700), reversed_posting("r1", "t1", -700, 0)).state
    original = find_transaction(state, "t1")
    assert original is not None
    assert original.reversed


def test_reversing_an_unknown_posting_is_refused() -> None:
    given(opened(), deposited("t1", 700, 700)).when(reverse("r1", "nope")).then_raises(
        PostingNotFoundError
    )


def test_reversing_twice_is_refused() -> None:
    given(opened(), deposited("t1", 700, 700), reversed_posting("r1", "t1", -700, 0)).when(
        reverse("r2", "t1")
    ).then_raises(AlreadyReversedError)


def test_repeating_the_same_reversal_is_a_no_op() -> None:
    given(opened(), deposited("t1", 700, 700), reversed_posting("r1", "t1", -700, 0)).when(
        reverse("r1", "t1", now=LATER, meta=OTHER_META)
    ).then()


def test_a_reversal_id_reused_for_another_target_is_a_conflict() -> None:
    given(
        opened(),
        deposited("t1", 700, 700),
        deposited("t2", 100, 800),
        reversed_posting("r1", "t1", -700, 100),
    ).when(reverse("r1", "t2")).then_raises(TransactionConflictError)


def test_a_reversal_may_not_reuse_the_id_of_a_posting() -> None:
    given(opened(), deposited("t1", 700, 700), deposited("t2", 100, 800)).when(
        reverse("t2", "t1")
    ).then_raises(TransactionConflictError)


def test_a_reversal_of_a_reversal_is_refused() -> None:
    given(opened(), deposited("t1", 700, 700), reversed_posting("r1", "t1", -700, 0)).when(
        reverse("r2", "r1")
    ).then_raises(NotReversibleError)


def test_a_reversal_that_would_break_the_overdraft_rule_is_refused() -> None:
    error = (
        given(opened(overdraft_limit=100), deposited("t1", 700, 700), withdrawn("t2", 650, 50))
        .when(reverse("r1", "t1"))
        .then_raises(InsufficientFundsError)
    )
    assert (error.balance, error.overdraft_limit, error.requested, error.shortfall) == (
        50,
        100,
        700,
        550,
    )


def test_a_reversal_may_use_the_overdraft() -> None:
    given(opened(overdraft_limit=700), deposited("t1", 700, 700), withdrawn("t2", 700, 0)).when(
        reverse("r1", "t1")
    ).then(reversed_posting("r1", "t1", -700, -700))
