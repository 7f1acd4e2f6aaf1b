"""evolve: revisions, balance, the transaction window, immutability and folding speed."""

from __future__ import annotations

from ledger.accounts.decider import (
    State,
    Status,
    decide,
    evolve,
    find_transaction,
    initial_state,
)
from ledger.accounts.events import AccountEvent, MoneyDeposited
from ledger.accounts.window import WINDOW_SIZE, TransactionWindow
from tests.ledger.scenario import (
    NOW,
    closed,
    deposit,
    deposited,
    fold,
    limit_changed,
    opened,
    reversed_posting,
    withdrawn,
)


def _deposits(count: int, start: int = 0) -> list[AccountEvent]:
    # model_construct skips validation: these events are known-good and many.
    return [
        MoneyDeposited.model_construct(
            account_id="acc-1",
            transaction_id=f"t{i}",
            amount=1,
            currency="EUR",
            description="",
            balance_after=i + 1,
            occurred_at=NOW,
        )
        for i in range(start, start + count)
    ]


def test_the_initial_state_has_no_account_and_revision_minus_one() -> None:
    assert initial_state.status is Status.NEW
    assert initial_state.revision == -1
    assert len(initial_state.window) == 0


def test_each_event_advances_the_revision_and_the_state_follows_the_facts() -> None:
    state = fold([opened(overdraft_limit=100)])
    assert (state.status, state.currency, state.overdraft_limit, state.revision) == (
        Status.OPEN,
        "EUR",
        100,
        0,
    )
    state = fold([deposited("t1", 500, 500), withdrawn("t2", 200, 300)], state)
    assert (state.balance, state.revision) == (300, 2)
    state = fold([limit_changed(900, 100), withdrawn("t3", 300, 0), closed()], state)
    assert (state.overdraft_limit, state.balance, state.status, state.revision) == (
        900,
        0,
        Status.CLOSED,
        5,
    )


def test_evolve_never_raises_on_odd_but_stored_facts() -> None:
    # A second AccountOpened or a posting before the open are not rejected: they are facts.
    state = fold([deposited("t1", 5, 5), opened(), opened(owner="Other"), deposited("t1", 5, 10)])
    assert (state.owner, state.balance, state.revision) == ("Alice Example", 10, 3)


def test_evolve_leaves_the_previous_state_untouched() -> None:
    base = fold([opened(), deposited("t1", 500, 500)])
    after = evolve(base, withdrawn("t2", 100, 400))
    assert (base.balance, base.revision, len(base.window)) == (500, 1, 1)
    assert find_transaction(base, "t2") is None
    assert find_transaction(after, "t2") is not None


def test_two_branches_from_one_state_do_not_see_each_other() -> None:
    base = fold([opened(), deposited("t1", 500, 500)])
    left = fold([deposited("t2", 100, 600), reversed_posting("r1", "t1", -500, 100)], base)
    right = fold([deposited("t3", 7, 507)], base)
    right = evolve(right, deposited("t2", 999, 1506))
    left_record, right_record = find_transaction(left, "t2"), find_transaction(right, "t2")
    assert left_record is not None and right_record is not None
    assert (left_record.amount, right_record.amount) == (100, 999)
    original_left, original_right = find_transaction(left, "t1"), find_transaction(right, "t1")
    assert original_left is not None and original_right is not None
    assert original_left.reversed and not original_right.reversed
    assert find_transaction(left, "t3") is None
    assert find_transaction(base, "t2") is None


def test_the_window_forgets_the_oldest_transaction_beyond_its_size() -> None:
    state = fold([opened(), *_deposits(WINDOW_SIZE + 1)])
    assert len(state.window) == WINDOW_SIZE
    assert find_transaction(state, "t0") is None
    assert find_transaction(state, "t1") is not None
    # Outside the window the id is treated as new: a deposit under it is posted again.
    events = decide(deposit("0.01", "t0"), state)
    assert len(events) == 1


def test_a_long_fold_keeps_every_version_consistent_across_log_compactions() -> None:
    state = fold([opened()])
    versions: list[State] = []
    for chunk in range(6):
        state = fold(_deposits(WINDOW_SIZE, chunk * WINDOW_SIZE), state)
        versions.append(state)
    for chunk, version in enumerate(versions):
        newest = (chunk + 1) * WINDOW_SIZE - 1
        record = find_transaction(version, f"t{newest}")
        assert record is not None and record.revision == newest + 1
        assert find_transaction(version, f"t{newest - WINDOW_SIZE}") is None
        assert find_transaction(version, f"t{newest + 1}") is None
        assert len(version.window) == WINDOW_SIZE


def test_equal_windows_compare_equal_whatever_their_history() -> None:
    direct = fold([opened(), deposited("t1", 5, 5)])
    branched = fold([deposited("t1", 5, 5)], fold([opened()]))
    assert direct.window == branched.window
    assert direct == branched
    assert TransactionWindow() != direct.window


def test_folding_100k_events_counts_every_posting() -> None:
    state = fold([opened(), *_deposits(100_000)])
    assert state.balance == 100_000
    assert state.revision == 100_000
