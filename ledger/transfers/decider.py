"""The Transfer decider: State, initial_state, evolve, decide, next_step. Pure: no I/O, no clock.

A transfer's stream records the outcome of each step on the accounts:
requested → debited → credited → completed; requested → rejected (the debit was refused);
debited → credit refused → refunded → failed (the destination closed in between, or would
exceed the balance bound); credit refused → credited → completed (a racing credit got through).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, assert_never

from ledger.accounts.commands import TransferStep
from ledger.errors import TransferConflictError, TransferNotFoundError
from ledger.transfers.commands import (
    AnyTransferCommand,
    RecordCredit,
    RecordCreditRefusal,
    RecordDebit,
    RecordRefund,
    RecordRejection,
    RequestTransfer,
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
)


class TransferStatus(StrEnum):
    """Where a transfer is; completed, failed and rejected are final."""

    NEW = "new"
    REQUESTED = "requested"
    DEBITED = "debited"
    CREDITED = "credited"
    CREDIT_REFUSED = "credit_refused"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"


FINAL_STATUSES = frozenset(
    {TransferStatus.COMPLETED, TransferStatus.FAILED, TransferStatus.REJECTED}
)
# Money left the source and has not yet arrived or gone back.
IN_TRANSIT_STATUSES = frozenset({TransferStatus.DEBITED, TransferStatus.CREDIT_REFUSED})


class TransferState(NamedTuple):
    """A transfer folded from its stream; revision is that of the last event (-1: none)."""

    status: TransferStatus = TransferStatus.NEW
    transfer_id: str = ""
    from_account: str = ""
    to_account: str = ""
    amount: int = 0
    currency: str = ""
    description: str = ""
    requested_at: datetime | None = None
    updated_at: datetime | None = None
    from_balance: int | None = None
    reason: str = ""
    refunded: bool = False
    posting_position: int = 0  # the $all position of its latest posting on an account
    from_revision: int = -1  # the accounts' revisions when requested: legs come after them
    to_revision: int = -1
    revision: int = -1

    @property
    def final(self) -> bool:
        """True once the transfer can change no more (a stray debit's refund aside)."""
        return self.status in FINAL_STATUSES

    @property
    def in_transit(self) -> int:
        """The money that left the source and is neither at the destination nor back."""
        return self.amount if self.status in IN_TRANSIT_STATUSES else 0


initial_transfer_state = TransferState()


def evolve_transfer(state: TransferState, event: AnyTransferEvent) -> TransferState:
    """Fold one event into the state; never raises, because events are facts."""
    state = state._replace(revision=state.revision + 1, updated_at=event.occurred_at)
    match event:
        case TransferRequested():
            return state._replace(
                status=TransferStatus.REQUESTED,
                transfer_id=event.transfer_id,
                from_account=event.from_account,
                to_account=event.to_account,
                amount=event.amount,
                currency=event.currency,
                description=event.description,
                requested_at=event.occurred_at,
                from_revision=event.from_revision,
                to_revision=event.to_revision,
            )
        case TransferDebited(from_balance=balance, posting_position=at):
            return state._replace(
                status=TransferStatus.DEBITED, from_balance=balance, posting_position=at
            )
        case TransferRejected(reason=reason):
            return state._replace(status=TransferStatus.REJECTED, reason=reason)
        case TransferCredited(posting_position=at):
            return state._replace(
                status=TransferStatus.CREDITED, posting_position=max(at, state.posting_position)
            )
        case TransferCompleted():
            return state._replace(status=TransferStatus.COMPLETED)
        case TransferCreditRefused(reason=reason):
            return state._replace(status=TransferStatus.CREDIT_REFUSED, reason=reason)
        case TransferRefunded(posting_position=at):
            return state._replace(refunded=True, posting_position=max(at, state.posting_position))
        case TransferFailed(reason=reason):
            return state._replace(status=TransferStatus.FAILED, reason=reason)
        case _:
            assert_never(event)


def same_request(command: RequestTransfer, state: TransferState) -> bool:
    """True if the command asks for the transfer the state was requested as."""
    wanted = (
        command.from_account,
        command.to_account,
        command.amount,
        command.currency,
        command.description,
    )
    had = (state.from_account, state.to_account, state.amount, state.currency, state.description)
    return wanted == had


def next_step(state: TransferState) -> TransferStep | None:
    """The posting the transfer needs next, or None when it needs none."""
    match state.status:
        case TransferStatus.REQUESTED:
            return TransferStep.DEBIT
        case TransferStatus.DEBITED | TransferStatus.CREDITED:
            return TransferStep.CREDIT
        case TransferStatus.CREDIT_REFUSED:
            return TransferStep.REFUND
        case _:
            return None


def decide_transfer(command: AnyTransferCommand, state: TransferState) -> list[AnyTransferEvent]:
    """The events a command causes in this state: [] when its step is recorded already."""
    at, tid = command.now, command.transfer_id
    if state.status is TransferStatus.NEW and not isinstance(command, RequestTransfer):
        raise TransferNotFoundError(tid)
    status = state.status
    match command:
        case RequestTransfer():
            if status is TransferStatus.NEW:
                return [
                    TransferRequested(
                        transfer_id=tid,
                        occurred_at=at,
                        from_account=command.from_account,
                        to_account=command.to_account,
                        amount=command.amount,
                        currency=command.currency,
                        description=command.description,
                        from_revision=command.from_revision,
                        to_revision=command.to_revision,
                    )
                ]
            if not same_request(command, state):
                raise TransferConflictError(tid)
            return []
        case RecordDebit() if status is TransferStatus.REQUESTED:
            return [
                TransferDebited(
                    transfer_id=tid,
                    occurred_at=at,
                    from_balance=command.from_balance,
                    posting_position=command.posting_position,
                )
            ]
        case RecordRejection() if status is TransferStatus.REQUESTED:
            return [TransferRejected(transfer_id=tid, occurred_at=at, reason=command.reason)]
        case RecordCredit() if status in (
            TransferStatus.DEBITED,
            TransferStatus.CREDITED,
            TransferStatus.CREDIT_REFUSED,  # a credit that raced the refusal got through
        ):
            credited = (
                []
                if status is TransferStatus.CREDITED
                else [
                    TransferCredited(
                        transfer_id=tid, occurred_at=at, posting_position=command.posting_position
                    )
                ]
            )
            return [*credited, TransferCompleted(transfer_id=tid, occurred_at=at)]
        case RecordCreditRefusal() if status is TransferStatus.DEBITED:
            return [TransferCreditRefused(transfer_id=tid, occurred_at=at, reason=command.reason)]
        case RecordRefund() if status is TransferStatus.CREDIT_REFUSED:
            return [
                TransferRefunded(
                    transfer_id=tid, occurred_at=at, posting_position=command.posting_position
                ),
                TransferFailed(transfer_id=tid, occurred_at=at, reason=state.reason),
            ]
        case RecordRefund() if status is TransferStatus.REJECTED and not state.refunded:
            # A debit that raced the rejection (see ledger.transfer_process) was put back.
            return [
                TransferRefunded(
                    transfer_id=tid, occurred_at=at, posting_position=command.posting_position
                )
            ]
        case _:
            # The step was recorded already (another path did it), or does not apply any more.
            return []
