"""Decider rules for reversals: opposite amount, at most once, never of a reversal."""

from __future__ import annotations

from ledger.accounts.decider import find_transaction
from ledger.accounts.events import deserialise_event
from ledger.errors import (
    AlreadyReversedError,
    PostingNotFoundError,
)
from tests.ledger.scenario import (
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


def test_reversing_twice_names_the_reversal_that_reversed_it() -> None:
    error = (
        given(opened(), deposited("t1", 700, 700), reversed_posting("r1", "t1", -700, 0))
        .when(reverse("r2", "t1"))
        .then_raises(AlreadyReversedError)
    )
    assert error.reversed_by == "r1"
    assert str(error) == "posting 't1' on account 'acc-1' is already reversed by 'r1'"


def test_a_reversed_posting_remembers_which_transaction_reversed_it() -> None:
    state = given(
        opened(),
        deposited("t1", 700, 700),
        deposited("t2", 100, 800),
        reversed_posting("r1", "t2", -100, 700),
    ).state
    assert [
        (r.reversed, r.reversed_by)
        for r in map(find_transaction, [state] * 2, ["t1", "t2"])
        if r is not None
    ] == [(False, None), (True, "r1")]


def test_a_stored_reversal_from_before_the_links_still_folds_and_names_its_reversal() -> None:
    """A PostingReversed as stored before reversals were linked (no description) still reads."""
    stored = deserialise_event(
        "PostingReversed",
        b'{"type":"PostingReversed","account_id":"acc-1","occurred_at":"2024-05-01T12:00:00Z",'
        b'"transaction_id":"r1","amount":-700,"currency":"EUR","description":"",'
        b'"balance_after":0,"kind":"reversal","reverses":"t1"}',
        1,
    )
    error = (
        given(opened(), deposited("t1", 700, 700), stored)
        .when(reverse("r2", "t1", description="reversal of t1"))
        .then_raises(AlreadyReversedError)
    )
    assert error.reversed_by == "r1"
