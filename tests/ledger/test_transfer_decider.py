"""Given/when/then specs of the transfer decider: requested → debited → completed, and the rest."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from ledger.accounts.commands import TransferStep, make_command
from ledger.errors import (
    InvalidInputError,
    LedgerError,
    TransferConflictError,
    TransferNotFoundError,
)
from ledger.transfers.commands import (
    AnyTransferCommand,
    RecordCredit,
    RecordCreditRefusal,
    RecordDebit,
    RecordRefund,
    RecordRejection,
    RequestTransfer,
)
from ledger.transfers.decider import (
    TransferState,
    TransferStatus,
    decide_transfer,
    evolve_transfer,
    initial_transfer_state,
    next_step,
)
from ledger.transfers.events import (
    AnyTransferEvent,
    TransferCompleted,
    TransferCredited,
    TransferCreditRefused,
    TransferDebited,
    TransferFailed,
    TransferRefunded,
    TransferRejected,
    TransferRequested,
    deserialise_transfer_event,
    serialise_transfer_event,
)
from tests.ledger.scenario import LATER, NOW

ID = "x1"


def fold(events: Iterable[AnyTransferEvent]) -> TransferState:
    state = initial_transfer_state
    for event in events:
        state = evolve_transfer(state, event)
    return state


class Then:
    def __init__(self, state: TransferState, command: AnyTransferCommand) -> None:
        self.state, self.command = state, command

    def then(self, *expected: AnyTransferEvent) -> TransferState:
        produced = decide_transfer(self.command, self.state)
        assert produced == list(expected)
        state = self.state
        for event in produced:
            state = evolve_transfer(state, event)
        return state

    def then_raises(self, error: type[LedgerError]) -> None:
        with pytest.raises(error):
            decide_transfer(self.command, self.state)


class Given:
    def __init__(self, events: Iterable[AnyTransferEvent]) -> None:
        self.state = fold(events)

    def when(self, command: AnyTransferCommand) -> Then:
        return Then(self.state, command)


def given(*events: AnyTransferEvent) -> Given:
    return Given(events)


def request(**fields: Any) -> RequestTransfer:
    values: dict[str, Any] = {
        "transfer_id": ID,
        "now": NOW,
        "from_account": "acc-1",
        "to_account": "acc-2",
        "amount": 300,
        "currency": "EUR",
        "description": "rent",
    }
    return RequestTransfer(**(values | fields))


def requested() -> TransferRequested:
    return TransferRequested(
        transfer_id=ID,
        occurred_at=NOW,
        from_account="acc-1",
        to_account="acc-2",
        amount=300,
        currency="EUR",
        description="rent",
    )


DEBITED = TransferDebited(transfer_id=ID, occurred_at=LATER, from_balance=700, posting_position=9)
REFUSED = TransferCreditRefused(transfer_id=ID, occurred_at=LATER, reason="closed")


def test_a_request_starts_the_transfer() -> None:
    state = given().when(request()).then(requested())
    assert (state.status, next_step(state)) == (TransferStatus.REQUESTED, TransferStep.DEBIT)


def test_the_same_request_again_is_a_replay() -> None:
    given(requested()).when(request(now=LATER)).then()


@pytest.mark.parametrize(
    "other", [{"amount": 301}, {"to_account": "acc-3"}, {"description": "other"}]
)
def test_another_request_under_the_same_id_is_refused(other: dict[str, Any]) -> None:
    given(requested()).when(request(**other)).then_raises(TransferConflictError)


def test_a_transfer_to_its_own_source_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="two different accounts"):
        make_command(RequestTransfer, {**dict(request()), "to_account": "acc-1"})


def test_a_step_of_an_unknown_transfer_is_refused() -> None:
    given().when(RecordCredit(transfer_id=ID, now=NOW, posting_position=1)).then_raises(
        TransferNotFoundError
    )


def test_the_debit_puts_the_money_in_transit() -> None:
    state = (
        given(requested())
        .when(RecordDebit(transfer_id=ID, now=LATER, from_balance=700, posting_position=9))
        .then(DEBITED)
    )
    assert (state.in_transit, state.from_balance, next_step(state)) == (
        300,
        700,
        TransferStep.CREDIT,
    )


def test_a_refused_debit_rejects_the_transfer_with_nothing_in_transit() -> None:
    state = (
        given(requested())
        .when(RecordRejection(transfer_id=ID, now=LATER, reason="insufficient funds"))
        .then(TransferRejected(transfer_id=ID, occurred_at=LATER, reason="insufficient funds"))
    )
    assert (state.final, state.in_transit, next_step(state)) == (True, 0, None)


def test_the_credit_completes_the_transfer() -> None:
    state = (
        given(requested(), DEBITED)
        .when(RecordCredit(transfer_id=ID, now=LATER, posting_position=12))
        .then(
            TransferCredited(transfer_id=ID, occurred_at=LATER, posting_position=12),
            TransferCompleted(transfer_id=ID, occurred_at=LATER),
        )
    )
    assert (state.status, state.in_transit, state.posting_position) == (
        TransferStatus.COMPLETED,
        0,
        12,
    )


def test_a_refused_credit_keeps_the_money_in_transit_until_refunded() -> None:
    state = (
        given(requested(), DEBITED)
        .when(RecordCreditRefusal(transfer_id=ID, now=LATER, reason="closed"))
        .then(REFUSED)
    )
    assert (state.in_transit, next_step(state)) == (300, TransferStep.REFUND)


def test_the_refund_fails_the_transfer_with_the_credit_s_reason() -> None:
    state = (
        given(requested(), DEBITED, REFUSED)
        .when(RecordRefund(transfer_id=ID, now=LATER, posting_position=15))
        .then(
            TransferRefunded(transfer_id=ID, occurred_at=LATER, posting_position=15),
            TransferFailed(transfer_id=ID, occurred_at=LATER, reason="closed"),
        )
    )
    assert (state.status, state.in_transit, state.refunded) == (TransferStatus.FAILED, 0, True)


def test_a_debit_that_raced_a_rejection_is_recorded_when_refunded() -> None:
    rejected = TransferRejected(transfer_id=ID, occurred_at=LATER, reason="insufficient funds")
    state = (
        given(requested(), rejected)
        .when(RecordRefund(transfer_id=ID, now=LATER, posting_position=15))
        .then(TransferRefunded(transfer_id=ID, occurred_at=LATER, posting_position=15))
    )
    assert (state.status, state.refunded) == (TransferStatus.REJECTED, True)


@pytest.mark.parametrize(
    "command",
    [
        RecordDebit(transfer_id=ID, now=LATER, from_balance=1, posting_position=1),
        RecordRejection(transfer_id=ID, now=LATER, reason="late"),
        RecordCreditRefusal(transfer_id=ID, now=LATER, reason="late"),
        RecordCredit(transfer_id=ID, now=LATER, posting_position=1),
        RecordRefund(transfer_id=ID, now=LATER, posting_position=1),
    ],
)
def test_a_step_recorded_already_or_out_of_turn_records_nothing(
    command: AnyTransferCommand,
) -> None:
    completed = (
        requested(),
        DEBITED,
        TransferCredited(transfer_id=ID, occurred_at=LATER, posting_position=12),
        TransferCompleted(transfer_id=ID, occurred_at=LATER),
    )
    given(*completed).when(command).then()


def test_events_round_trip_through_their_stored_form() -> None:
    for event in (requested(), DEBITED, REFUSED):
        assert deserialise_transfer_event(*serialise_transfer_event(event)) == event
