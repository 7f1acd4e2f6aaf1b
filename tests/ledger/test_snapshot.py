"""Snapshots: round trip, size of a full window, and refusal of unreadable snapshots."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ledger.accounts.decider import State, decide, find_transaction
from ledger.accounts.events import MoneyDeposited, MoneyWithdrawn, PostingKind
from ledger.accounts.snapshot import SNAPSHOT_VERSION, state_from_snapshot, state_to_snapshot
from ledger.accounts.window import WINDOW_SIZE, TransactionWindow, WindowRow, id_digest
from ledger.errors import AlreadyReversedError, TransactionConflictError
from tests.ledger.scenario import (
    NOW,
    deposit,
    deposited,
    fold,
    limit_changed,
    opened,
    reverse,
    reversed_posting,
    withdrawn,
)


def _busy_state() -> State:
    return fold(
        [
            opened(overdraft_limit=1000),
            deposited("t1", 500, 500, "salary"),
            withdrawn("t2", 800, -300, "rent"),
            reversed_posting("r1", "t2", 800, 500),
            limit_changed(2000, 1000),
            deposited("t3", 25, 525, "ümlaut ✓"),
        ]
    )


def test_a_snapshot_round_trips_to_an_equal_state() -> None:
    state = _busy_state()
    restored = state_from_snapshot(state_to_snapshot(state))
    assert restored == state
    assert restored is not None
    assert restored.revision == 5
    assert find_transaction(restored, "t2") == find_transaction(state, "t2")


def test_a_restored_state_decides_like_the_original() -> None:
    restored = state_from_snapshot(state_to_snapshot(_busy_state()))
    assert restored is not None
    assert decide(deposit("5.00", "t1", "salary"), restored) == []
    with pytest.raises(TransactionConflictError):
        decide(deposit("5.01", "t1", "salary"), restored)
    with pytest.raises(AlreadyReversedError):
        decide(reverse("r2", "t2"), restored)
    assert decide(reverse("r1", "t2"), restored) == []
    assert len(decide(deposit("1.00", "t4"), restored)) == 1


def test_a_restored_state_keeps_folding_and_snapshotting() -> None:
    restored = state_from_snapshot(state_to_snapshot(_busy_state()))
    assert restored is not None
    later = fold([deposited("t4", 100, 625), reversed_posting("r2", "t1", -500, 125)], restored)
    again = state_from_snapshot(state_to_snapshot(later))
    assert again == later
    record = find_transaction(later, "t1")
    assert record is not None and record.reversed
    assert decide(deposit("1.00", "t4"), later) == []


def test_a_snapshot_of_a_full_window_stays_well_under_one_mebibyte() -> None:
    events: list[Any] = [opened(overdraft_limit=10**14)]
    balance = 0
    for i in range(WINDOW_SIZE + 5):
        amount = 987_654_321_012 + i
        tx = f"{i:010d}-" + "x" * 53
        if i % 2:
            balance -= amount
            events.append(
                MoneyWithdrawn.model_construct(
                    account_id="acc-1",
                    transaction_id=tx,
                    amount=-amount,
                    currency="EUR",
                    description="d" * 500,
                    balance_after=balance,
                    occurred_at=NOW,
                )
            )
        else:
            balance += amount
            events.append(
                MoneyDeposited.model_construct(
                    account_id="acc-1",
                    transaction_id=tx,
                    amount=amount,
                    currency="EUR",
                    description="d" * 500,
                    balance_after=balance,
                    occurred_at=NOW,
                )
            )
    state = fold(events)
    snapshot = state_to_snapshot(state)
    assert len(state.window) == WINDOW_SIZE
    assert len(snapshot) < 700_000, len(snapshot)
    assert state_from_snapshot(snapshot) == state


def _snapshot_json() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(state_to_snapshot(_busy_state()))
    return loaded


def _broken(change: str) -> bytes:
    data = _snapshot_json()
    window = data["window"]
    match change:
        case "version":
            data["snapshot_version"] = SNAPSHOT_VERSION + 1
        case "missing-field":
            del data["account"]["balance"]
        case "extra-field":
            data["account"]["colour"] = "blue"
        case "wrong-type":
            data["revision"] = "5"
        case "bad-status":
            data["account"]["status"] = "frozen"
        case "bad-base64":
            window["digests"] = "!!!"
        case "short-digests":
            window["digests"] = base64.b64encode(b"x" * 24).decode()
        case "column-lengths":
            window["amounts"].append(1)
        case "bad-kind":
            window["kinds"] = "z" + window["kinds"][1:]
        case "zero-gap":
            window["revision_gaps"][1] = 0
        case "reversal-forward":
            window["reversals"] = [[0, 2]]
        case "revision-beyond":
            data["revision"] = 1
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    "change",
    [
        "version",
        "missing-field",
        "extra-field",
        "wrong-type",
        "bad-status",
        "bad-base64",
        "short-digests",
        "column-lengths",
        "bad-kind",
        "zero-gap",
        "reversal-forward",
        "revision-beyond",
    ],
)
def test_an_unreadable_or_other_version_snapshot_is_none(change: str) -> None:
    assert state_from_snapshot(_broken(change)) is None


@pytest.mark.parametrize(
    "data", [b"", b"not json", b"[]", b"{}", b"\xff\xfe", state_to_snapshot(_busy_state())[:-10]]
)
def test_garbage_is_not_a_snapshot(data: bytes) -> None:
    assert state_from_snapshot(data) is None


def _rows(count: int, reversals: dict[int, int] | None = None) -> list[WindowRow]:
    reversals = reversals or {}
    rows, balance = [], 0
    for i in range(count):
        kind = PostingKind.REVERSAL if i in reversals else PostingKind.DEPOSIT
        balance += 10
        rows.append(
            WindowRow(id_digest(f"t{i}"), b"c" * 8, kind, i + 1, 10, balance, reversals.get(i, -1))
        )
    return rows


def test_given_more_rows_than_a_window_when_rebuilt_then_the_oldest_go_and_reversals_follow() -> (
    None
):
    rows = _rows(WINDOW_SIZE + 2, {WINDOW_SIZE + 1: 5, WINDOW_SIZE: 0})

    window = TransactionWindow.from_rows(rows)

    kept = window.rows()
    assert len(kept) == WINDOW_SIZE
    assert kept[0].id_digest == id_digest("t2")
    assert kept[-1].reverses == 3  # row 5 of the input is row 3 of the window
    assert kept[-2].reverses == -1  # its target (row 0) has left the window
    assert window.record("t1") is None
    record = window.record("t5")
    assert record is not None and record.reversed and record.revision == 6


def test_given_a_repeated_id_digest_when_rebuilt_then_the_latest_posting_answers() -> None:
    rows = _rows(4)
    rows[3] = rows[3]._replace(id_digest=id_digest("t1"))

    window = TransactionWindow.from_rows(rows)

    record = window.record("t1")
    assert record is not None and record.revision == 4
    assert window.rows() == rows
    # Appending to the rebuilt window still finds both the new and the old postings.
    later = window.appended("t9", ("deposit", "1.00", ""), PostingKind.DEPOSIT, 5, 100, 140)
    assert later.record("t9") is not None
    latest = later.record("t1")
    assert latest is not None and latest.revision == 4


def test_a_restored_state_names_the_transaction_that_reversed_a_posting() -> None:
    restored = state_from_snapshot(state_to_snapshot(_busy_state()))
    assert restored is not None
    record = find_transaction(restored, "t2")
    assert record is not None and record.reversed_by == "r1"
    with pytest.raises(AlreadyReversedError, match="already reversed by 'r1'"):
        decide(reverse("r2", "t2"), restored)
    # A restored state that folds on and is snapshotted again keeps the name.
    again = state_from_snapshot(state_to_snapshot(fold([deposited("t4", 1, 526)], restored)))
    assert again is not None
    assert (record := find_transaction(again, "t2")) is not None and record.reversed_by == "r1"


def test_a_version_2_snapshot_without_reversal_ids_is_ignored() -> None:
    data = json.loads(state_to_snapshot(_busy_state()))
    data["snapshot_version"] = 2
    del data["window"]["reversal_ids"]
    assert state_from_snapshot(json.dumps(data).encode()) is None


def test_a_snapshot_whose_reversal_ids_do_not_match_its_reversals_is_ignored() -> None:
    data = json.loads(state_to_snapshot(_busy_state()))
    data["window"]["reversal_ids"] = []
    assert state_from_snapshot(json.dumps(data).encode()) is None
