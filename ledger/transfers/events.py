"""Transfer events: the facts of one transfer's stream, their union and JSON (de)serialisation."""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ledger.errors import CorruptEventError


class TransferEvent(BaseModel):
    """Base of transfer events: facts about one transfer at one moment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    transfer_id: str
    occurred_at: AwareDatetime


class TransferRequested(TransferEvent):
    """A transfer was asked for: the first event of its stream, written once per id."""

    type: Literal["TransferRequested"] = "TransferRequested"
    from_account: str
    to_account: str
    amount: Annotated[int, Field(gt=0)]
    currency: str
    description: str
    # The accounts' revisions when requested (-1: unknown): every leg comes after them.
    from_revision: int = -1
    to_revision: int = -1


class TransferDebited(TransferEvent):
    """The source account was debited: the money is in transit."""

    type: Literal["TransferDebited"] = "TransferDebited"
    from_balance: int
    posting_position: int  # the debit's commit position in $all


class TransferRejected(TransferEvent):
    """The debit was refused (the reason is the account's rule): nothing moved."""

    type: Literal["TransferRejected"] = "TransferRejected"
    reason: str


class TransferCredited(TransferEvent):
    """The destination account was credited: the money arrived."""

    type: Literal["TransferCredited"] = "TransferCredited"
    posting_position: int


class TransferCompleted(TransferEvent):
    """The transfer is final: debited and credited."""

    type: Literal["TransferCompleted"] = "TransferCompleted"


class TransferCreditRefused(TransferEvent):
    """The credit was refused for good (the destination is closed): the debit must go back."""

    type: Literal["TransferCreditRefused"] = "TransferCreditRefused"
    reason: str


class TransferRefunded(TransferEvent):
    """The debit was posted back to the source account."""

    type: Literal["TransferRefunded"] = "TransferRefunded"
    posting_position: int


class TransferFailed(TransferEvent):
    """The transfer is final without moving money: debited, then refunded."""

    type: Literal["TransferFailed"] = "TransferFailed"
    reason: str


AnyTransferEvent: TypeAlias = (
    TransferRequested
    | TransferDebited
    | TransferRejected
    | TransferCredited
    | TransferCompleted
    | TransferCreditRefused
    | TransferRefunded
    | TransferFailed
)
TRANSFER_EVENT_TYPES: frozenset[str] = frozenset(
    cls.__name__
    for cls in (
        TransferRequested,
        TransferDebited,
        TransferRejected,
        TransferCredited,
        TransferCompleted,
        TransferCreditRefused,
        TransferRefunded,
        TransferFailed,
    )
)
_EVENTS: TypeAdapter[AnyTransferEvent] = TypeAdapter(
    Annotated[AnyTransferEvent, Field(discriminator="type")]
)


def serialise_transfer_event(event: AnyTransferEvent) -> tuple[str, bytes]:
    """The stored event type and its JSON data (which repeats the type)."""
    return event.type, event.model_dump_json().encode("utf-8")


def deserialise_transfer_event(event_type: str, data: bytes) -> AnyTransferEvent:
    """A stored transfer event read back; CorruptEventError when it is not one."""
    if event_type not in TRANSFER_EVENT_TYPES:
        raise CorruptEventError(f"unknown transfer event type {event_type!r}")
    try:
        event = _EVENTS.validate_json(data, strict=True)
    except (ValidationError, ValueError) as exc:
        raise CorruptEventError(f"{event_type} data is not readable: {exc}") from exc
    if event.type != event_type:
        raise CorruptEventError(f"stored type {event_type!r} holds data of type {event.type!r}")
    return event
