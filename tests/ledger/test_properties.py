"""Property test: random command sequences keep the ledger's invariants and idempotency."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ledger.accounts.commands import AccountCommand, Deposit, Reverse, Withdraw
from ledger.accounts.decider import State, decide, evolve
from ledger.accounts.events import AccountEvent, Posting, PostingReversed
from ledger.accounts.snapshot import state_from_snapshot, state_to_snapshot
from ledger.errors import BusinessRuleError
from ledger.money import format_minor_units
from tests.ledger.scenario import (
    LATER,
    OTHER_META,
    change_limit,
    deposit,
    fold,
    opened,
    reverse,
    withdraw,
)

# A small pool of ids and descriptions makes repeats, replays and conflicts frequent.
transaction_ids = st.sampled_from([f"t{i}" for i in range(8)])
descriptions = st.sampled_from(["", "rent", "salary"])
cents = st.integers(min_value=1, max_value=5_000)

operations = st.one_of(
    st.tuples(st.just("deposit"), cents, transaction_ids, descriptions),
    st.tuples(st.just("withdraw"), cents, transaction_ids, descriptions),
    st.tuples(st.just("reverse"), transaction_ids, transaction_ids),
    st.tuples(st.just("limit"), st.integers(min_value=0, max_value=5_000)),
)


def _command(operation: tuple[Any, ...]) -> AccountCommand:
    match operation:
        case ("deposit", amount, tx, description):
            return deposit(format_minor_units(amount, "EUR"), tx, description)
        case ("withdraw", amount, tx, description):
            return withdraw(format_minor_units(amount, "EUR"), tx, description)
        case ("reverse", tx, target):
            return reverse(tx, target)
        case ("limit", limit):
            return change_limit(format_minor_units(limit, "EUR"))
    raise AssertionError(operation)


def _check_invariants(state: State, events: list[AccountEvent]) -> None:
    assert state.balance >= -state.overdraft_limit
    running = 0
    reversals: set[str] = set()
    reversed_ids: set[str] = set()
    for event in events:
        if isinstance(event, Posting):
            running += event.amount
            assert event.balance_after == running
        if isinstance(event, PostingReversed):
            # At most one reversal per posting, and never one of a reversal.
            assert event.reverses not in reversed_ids | reversals
            reversed_ids.add(event.reverses)
            reversals.add(event.transaction_id)
    assert state.balance == running


@given(
    limit=st.integers(min_value=0, max_value=3_000),
    script=st.lists(operations, max_size=40),
)
def test_random_commands_keep_the_invariants_and_replays_are_no_ops(
    limit: int, script: list[tuple[Any, ...]]
) -> None:
    events: list[AccountEvent] = [opened(overdraft_limit=limit)]
    state = fold(events)
    accepted_postings: list[AccountCommand] = []
    for operation in script:
        command = _command(operation)
        try:
            produced = decide(command, state)
        except BusinessRuleError:
            continue
        for event in produced:
            state = evolve(state, event)
        events.extend(produced)
        _check_invariants(state, events)
        # Replaying a command right after it was accepted changes nothing.
        assert decide(command, state) == []
        if produced and isinstance(command, Deposit | Withdraw | Reverse):
            accepted_postings.append(command)
    # Any accepted posting replayed later, at another time by another actor, is still a no-op.
    for command in accepted_postings:
        assert decide(command.model_copy(update={"now": LATER, "meta": OTHER_META}), state) == []
    assert fold(events) == state
    assert state_from_snapshot(state_to_snapshot(state)) == state


def _outcome(command: AccountCommand, state: State) -> list[AccountEvent] | str:
    try:
        return decide(command, state)
    except BusinessRuleError as error:
        return type(error).__name__


@given(
    limit=st.integers(min_value=0, max_value=3_000),
    script=st.lists(st.one_of(operations, st.just(("snapshot",))), max_size=40),
)
def test_a_state_restored_from_snapshots_decides_exactly_like_the_folded_one(
    limit: int, script: list[tuple[Any, ...]]
) -> None:
    folded = restored = fold([opened(overdraft_limit=limit)])
    for operation in script:
        if operation == ("snapshot",):
            again = state_from_snapshot(state_to_snapshot(restored))
            assert again is not None
            restored = again
            continue
        command = _command(operation)
        outcome = _outcome(command, folded)
        assert _outcome(command, restored) == outcome
        if isinstance(outcome, list):
            for event in outcome:
                folded, restored = evolve(folded, event), evolve(restored, event)
    assert restored == folded
