"""Account events: frozen pydantic facts, their discriminated union and JSON (de)serialisation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import from_json

from ledger.accounts.commands import CommandMeta
from ledger.accounts.upcasting import current_schema_version, upcast
from ledger.errors import CorruptEventError


class PostingKind(StrEnum):
    """What a posting is; transfer legs are reserved so transfers need no schema change."""

    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    REVERSAL = "reversal"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_REFUND = "transfer_refund"


TRANSFER_KINDS = frozenset(
    {PostingKind.TRANSFER_IN, PostingKind.TRANSFER_OUT, PostingKind.TRANSFER_REFUND}
)


class Event(BaseModel):
    """Base of account events: facts about one account at one moment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id: str
    occurred_at: AwareDatetime


class AccountOpened(Event):
    """The account was opened for an owner, in a currency, with an overdraft limit."""

    type: Literal["AccountOpened"] = "AccountOpened"
    owner: str
    currency: str
    overdraft_limit: Annotated[int, Field(ge=0)]


class Posting(Event):
    """Base of events that move money; amount is signed: credits > 0, debits < 0."""

    transaction_id: str
    amount: int
    currency: str
    description: str
    balance_after: int
    # Set on the legs of a transfer only (absent from other postings' stored JSON).
    transfer_id: str | None = None
    counterparty: str | None = None


class MoneyDeposited(Posting):
    """Money was credited to the account."""

    type: Literal["MoneyDeposited"] = "MoneyDeposited"
    kind: Literal[PostingKind.DEPOSIT, PostingKind.TRANSFER_IN, PostingKind.TRANSFER_REFUND] = (
        PostingKind.DEPOSIT
    )
    amount: Annotated[int, Field(gt=0)]


class MoneyWithdrawn(Posting):
    """Money was debited from the account (amount is negative)."""

    type: Literal["MoneyWithdrawn"] = "MoneyWithdrawn"
    kind: Literal[PostingKind.WITHDRAWAL, PostingKind.TRANSFER_OUT] = PostingKind.WITHDRAWAL
    amount: Annotated[int, Field(lt=0)]


class PostingReversed(Posting):
    """The posting `reverses` was undone by posting its opposite amount."""

    type: Literal["PostingReversed"] = "PostingReversed"
    kind: Literal[PostingKind.REVERSAL] = PostingKind.REVERSAL
    reverses: str


class OverdraftLimitChanged(Event):
    """The overdraft limit (minor units, zero or more) was changed."""

    type: Literal["OverdraftLimitChanged"] = "OverdraftLimitChanged"
    limit: Annotated[int, Field(ge=0)]
    previous_limit: Annotated[int, Field(ge=0)]


class AccountClosed(Event):
    """The account was closed with a zero balance."""

    type: Literal["AccountClosed"] = "AccountClosed"


AccountEvent: TypeAlias = (
    AccountOpened
    | MoneyDeposited
    | MoneyWithdrawn
    | PostingReversed
    | OverdraftLimitChanged
    | AccountClosed
)
PostingEvent: TypeAlias = MoneyDeposited | MoneyWithdrawn | PostingReversed

# The event type is the class name, which is also the default of each class's "type" field.
EVENT_TYPES: frozenset[str] = frozenset(
    cls.__name__
    for cls in (
        AccountOpened,
        MoneyDeposited,
        MoneyWithdrawn,
        PostingReversed,
        OverdraftLimitChanged,
        AccountClosed,
    )
)
_EVENTS: TypeAdapter[AccountEvent] = TypeAdapter(
    Annotated[AccountEvent, Field(discriminator="type")]
)


def serialise_event(event: AccountEvent) -> tuple[str, bytes]:
    """Return the stored event type and its JSON data (which repeats the type)."""
    # exclude_none: postings that are not transfer legs keep exactly their former bytes.
    return event.type, event.model_dump_json(exclude_none=True).encode("utf-8")


def deserialise_event(event_type: str, data: bytes, schema_version: int) -> AccountEvent:
    """Read stored event data of any known schema version as the current event class."""
    if event_type not in EVENT_TYPES:
        raise CorruptEventError(f"unknown account event type {event_type!r}")
    try:
        if schema_version != current_schema_version(event_type):
            raw = json.loads(data)
            if not isinstance(raw, dict):
                raise CorruptEventError(f"{event_type} data is not a JSON object")
            raw.pop("type", None)
            current = upcast(event_type, raw, schema_version)
            data = json.dumps({"type": event_type, **current}).encode("utf-8")
        event = _EVENTS.validate_json(data, strict=True)
    except (ValidationError, ValueError) as exc:
        raise CorruptEventError(f"{event_type} data is not readable: {exc}") from exc
    if event.type != event_type:
        raise CorruptEventError(f"stored type {event_type!r} holds data of type {event.type!r}")
    return event


def event_metadata(event: AccountEvent, meta: CommandMeta) -> dict[str, str | int]:
    """The metadata stored with an event: the command's audit fields and the schema version."""
    return {
        "correlation_id": meta.correlation_id,
        "causation_id": meta.causation_id,
        "actor": meta.actor,
        "schema_version": current_schema_version(event.type),
    }


def encode_metadata(event: AccountEvent, meta: CommandMeta) -> bytes:
    """event_metadata as JSON bytes, ready to store next to the event data."""
    return json.dumps(event_metadata(event, meta), ensure_ascii=False).encode("utf-8")


def schema_version_from_metadata(metadata: bytes | Mapping[str, object] | None) -> int:
    """The schema_version in stored metadata; absent metadata or key means version 1."""
    if isinstance(metadata, bytes | bytearray):
        if not metadata.strip():
            return 1
        try:
            metadata = from_json(metadata)  # pydantic-core's parser: a quarter of json.loads' time
        except ValueError as exc:
            raise CorruptEventError(f"event metadata is not JSON: {exc}") from exc
    if metadata is None:
        return 1
    if not isinstance(metadata, Mapping):
        raise CorruptEventError("event metadata is not a JSON object")
    version = metadata.get("schema_version", 1)
    if type(version) is not int or version < 1:
        raise CorruptEventError(f"event metadata has an invalid schema_version {version!r}")
    return version
