"""The transfer streams' port: TransferStore, its stored events and their one encoding."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ledger.accounts.commands import CommandMeta
from ledger.store import EncodedEvent, EventStore, event_id
from ledger.streams import transfer_stream
from ledger.transfers.events import (
    AnyTransferEvent,
    deserialise_transfer_event,
    serialise_transfer_event,
)

TRANSFER_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class StoredTransferEvent:
    """A transfer event as read back, with where it is in its stream and in $all."""

    revision: int
    commit_position: int
    event: AnyTransferEvent


def encode_transfer_events(
    transfer_id: str,
    *,
    expected_revision: int,
    events: Sequence[AnyTransferEvent],
    meta: CommandMeta,
) -> list[EncodedEvent]:
    """The events as appended after expected_revision, with deterministic ids.

    An id covers the stream, the revision, the content and the cause (`meta.causation_id`):
    a retried append is written once, and a step recorded again elsewhere is a conflict or a
    retry, never a second record. A request's cause is the command's invocation, so a
    repeated request (even with the same clock reading) is told apart by "no stream".
    """
    metadata = json.dumps(
        {**meta.model_dump(), "schema_version": TRANSFER_SCHEMA_VERSION}, ensure_ascii=False
    ).encode("utf-8")
    encoded = []
    for i, event in enumerate(events):
        event_type, data = serialise_transfer_event(event)
        key = f"{transfer_stream(transfer_id)}/{meta.causation_id}"
        encoded.append(
            EncodedEvent(event_id(key, expected_revision + 1 + i, data), event_type, data, metadata)
        )
    return encoded


def decode_transfer_event(
    revision: int, commit_position: int, event_type: str, data: bytes
) -> StoredTransferEvent:
    """A transfer event read back from its stored form."""
    return StoredTransferEvent(
        revision, commit_position, deserialise_transfer_event(event_type, bytes(data))
    )


class TransferStore(Protocol):
    """Transfer streams with optimistic concurrency (each id's stream starts at most once).

    Implemented by the esdbclient adapter (ledger.eventstore) and in memory (ledger.memory_store).
    """

    def read_transfer(self, transfer_id: str) -> list[StoredTransferEvent]:
        """The transfer's events; empty when its stream does not exist."""
        ...

    def append_transfer(
        self,
        transfer_id: str,
        *,
        expected_revision: int,
        events: Sequence[AnyTransferEvent],
        meta: CommandMeta,
    ) -> int:
        """Append at exactly the revision read (-1: a new stream); return the commit position.

        VersionConflict when the stream is elsewhere; an identical retry is written once.
        """
        ...

    def read_all_transfers(
        self, *, from_position: int = 0
    ) -> Iterator[tuple[str, StoredTransferEvent]]:
        """(transfer id, event) of every transfer event in $all order, from a position on."""
        ...


class LedgerStore(EventStore, TransferStore, Protocol):
    """An event store holding both account and transfer streams (both stores are one)."""
