"""The torture run's transfer checks catch what they claim to: planted violations are reported."""

from __future__ import annotations

from typing import Any

from bench.torture.checks import check_commands
from bench.torture.reading import StreamEvent, TransferRecord
from bench.torture.transfer_checks import check_money_in_flight, check_transfers
from ledger.accounts.events import MoneyDeposited, MoneyWithdrawn, PostingKind
from ledger.transfers.events import (
    AnyTransferEvent,
    TransferCompleted,
    TransferCredited,
    TransferDebited,
    TransferRequested,
)
from tests.support.clock import T0
from tests.support.streams import StreamBuilder


class Run:
    """Account streams and transfer events on one $all order."""

    def __init__(self) -> None:
        self.builder = StreamBuilder()
        self.transfers: list[TransferRecord] = []
        self.seed: StreamEvent | None = None

    def transfer_event(self, event: AnyTransferEvent) -> None:
        self.builder.position += 100
        self.transfers.append(TransferRecord(event.transfer_id, self.builder.position, event))

    def leg(self, account: str, kind: PostingKind, amount: int, other: str) -> StreamEvent:
        balance = self.builder.balance(account)
        step = {"transfer_out": "debit", "transfer_in": "credit", "transfer_refund": "refund"}
        common: dict[str, Any] = {
            "account_id": account,
            "transaction_id": f"x1/{step[kind.value]}",
            "currency": "EUR",
            "description": "",
            "occurred_at": T0,
            "transfer_id": "x1",
            "counterparty": other,
            "kind": kind,
        }
        if kind is PostingKind.TRANSFER_OUT:
            event: Any = MoneyWithdrawn(amount=-amount, balance_after=balance - amount, **common)
        else:
            event = MoneyDeposited(amount=amount, balance_after=balance + amount, **common)
        return self.builder.add(account, event)

    def completed(self, amount: int = 300, *, credit: int | None = None) -> None:
        """x1 of `amount` from a to b, every step recorded after its posting."""
        self.transfer_event(
            TransferRequested(
                transfer_id="x1",
                occurred_at=T0,
                from_account="a",
                to_account="b",
                amount=amount,
                currency="EUR",
                description="",
            )
        )
        debit = self.leg("a", PostingKind.TRANSFER_OUT, amount, "b")
        self.transfer_event(
            TransferDebited(
                transfer_id="x1", occurred_at=T0, from_balance=0, posting_position=debit.position
            )
        )
        credited = self.leg("b", PostingKind.TRANSFER_IN, credit or amount, "a")
        self.transfer_event(
            TransferCredited(transfer_id="x1", occurred_at=T0, posting_position=credited.position)
        )
        self.transfer_event(TransferCompleted(transfer_id="x1", occurred_at=T0))


def opened() -> Run:
    run = Run()
    run.builder.open("a")
    run.builder.open("b")
    run.seed = run.builder.deposit("a", "d1", 1000)
    return run


def sent(result: str = "ok", state: str = "completed") -> dict[str, Any]:
    command = {"kind": "transfer", "account": "a", "to": "b", "tx": "x1", "minor": 300}
    return {
        "op": 0,
        "client": 0,
        "cmd": {**command, "description": ""},
        "result": result,
        "state": state,
    }


def test_a_sound_transfer_passes_in_flight_and_at_rest() -> None:
    run = opened()
    run.completed()

    assert check_money_in_flight(run.builder.streams, run.transfers) == []
    assert check_transfers(run.transfers, [sent()]) == []
    # The legs' derived transaction ids are no phantoms of the deposits' checks.
    assert run.seed is not None
    seed = {"kind": "deposit", "account": "a", "tx": "d1", "minor": 1000, "description": ""}
    acked = {"revision": 1, "position": run.seed.position, "balance": 1000}
    records = [sent(), {"op": 1, "client": 0, "cmd": seed, "result": "ok", **acked}]
    assert check_commands(run.builder.streams, records) == []


def test_a_credit_of_another_amount_is_caught_in_flight() -> None:
    run = opened()
    run.completed(credit=400)

    found = check_money_in_flight(run.builder.streams, run.transfers)

    assert any("moves the amounts [300, 400]" in f for f in found)


def test_a_leg_posted_twice_is_caught() -> None:
    run = opened()
    run.completed()
    run.leg("b", PostingKind.TRANSFER_IN, 300, "a")

    found = check_money_in_flight(run.builder.streams, run.transfers)

    assert any("has a leg posted twice" in f for f in found)


def test_a_leg_the_transfer_s_state_does_not_allow_is_caught() -> None:
    run = opened()
    run.leg("a", PostingKind.TRANSFER_OUT, 300, "b")  # a debit with no request before it

    [found] = check_money_in_flight(run.builder.streams, run.transfers)

    assert "is new at position" in found


def test_a_balance_off_the_money_in_flight_is_caught() -> None:
    run = opened()
    run.completed()
    run.builder.deposit("b", "d2", 50, after=9999)  # a balance_after that breaks conservation

    found = check_money_in_flight(run.builder.streams, run.transfers)

    assert any(f.startswith("in flight:") and "EUR" in f for f in found)


def test_at_rest_an_unfinished_transfer_and_a_wrong_answer_are_caught() -> None:
    run = opened()
    run.transfers.extend(t for t in Run().transfers)
    run.transfer_event(
        TransferRequested(
            transfer_id="x1",
            occurred_at=T0,
            from_account="a",
            to_account="b",
            amount=300,
            currency="EUR",
            description="",
        )
    )

    found = check_transfers(run.transfers, [sent()])

    assert found == [
        "at rest: transfer x1 is still requested",
        "acked: transfer x1 was answered {'completed'}, is requested",
    ]
    assert check_transfers(run.transfers, []) == [
        "at rest: transfer x1 is still requested",
        "phantom: transfer x1 was never sent",
    ]
